"""Meta-KD (issues 12, 27) on the four Amazon domains (books, dvd, electronics, kitchen), split
into UNITS that each fit in ~75 minutes on one CPU thread and write their own JSON as they
finish. A unit depends on nothing outside the repository: it retrains (deterministically, from
its seeds) every teacher its students need.

    .venv/bin/python benchmarks/metakd.py --list-units
    .venv/bin/python benchmarks/metakd.py --unit maxlen             # 64 vs 128 tokens, a teacher
    .venv/bin/python benchmarks/metakd.py --unit full-meta-s1       # meta-teacher + 4 students

Units (the reduced protocol of issue 27: max length 128, as ``maxlen`` found 64 losing 1.67
points (> 1) on the books teacher; teachers 2 epochs, one teacher seed (1) shared by the
student seeds; students stage 1 one epoch, stage 2 two epochs; no-KD three epochs; model
selection on a seeded half of each domain's dev rows, the other half reported). A full-data
shared teacher sees 4 x 1,700 rows (~32 min at ~7 rows/s); with the students of all four
targets (~10 min each) it would pass 75 minutes, so a unit is one teacher kind and two targets
(the teacher, deterministic from its seed, is retrained by both halves):

- ``maxlen``: one single-domain teacher (books) at 128 and at 64 tokens, accuracy of the last
  epoch on all 300 dev rows; 64 is used when it loses at most 1 point.
- ``full-<d1>+<d2>-<method>-s<seed>``: all data, targets d1 and d2 (books+dvd,
  electronics+kitchen); ``meta`` (the meta-teacher + its Meta-KD students), ``mixed``,
  ``multitask`` (the shared teacher + the targets' students), ``noweights`` (the ablation:
  the same meta-teacher, students without instance weights), for student seed ``seed``;
  ``full-<domain>-single-s<seed>``: the target's single-domain teacher and its student;
  ``full-nokd-s<seed>``: the four no-KD students.
- ``noindomain-<domain>-<method>-s<seed>``: the target never seen by the teacher (``meta``,
  ``mixed``, ``multitask`` over the three other domains). Its no-KD student is
  ``full-nokd-s<seed>``'s (no teacher: the same rows, seed and selection).
- ``frac0.1-<domain>-<method>-s<seed>``: 10% of the target's rows (subset seeded by the
  teacher seed); methods as ``full``.

Writes ``results/metakd_<unit>.json`` (the command, the machine with CPU model + ISA, threads,
wall time, and the pipeline's summary: per-method report-half and selection-half figures).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

from common import write_result

DOMAINS = ["books", "dvd", "electronics", "kitchen"]
SEEDS = [1, 2, 3]
TEACHER_SEED = 1


PAIRS = ["books+dvd", "electronics+kitchen"]
FULL = ["meta", "mixed", "multitask", "noweights"]
PER_TARGET = {"noindomain": ["meta", "mixed", "multitask"],
              "frac0.1": ["meta", "mixed", "multitask", "single", "nokd"]}


def units() -> list[str]:
    out = ["maxlen"] + [f"full-nokd-s{s}" for s in SEEDS]
    out += [f"full-{p}-{m}-s{s}" for s in SEEDS for m in FULL for p in PAIRS]
    out += [f"full-{d}-single-s{s}" for s in SEEDS for d in DOMAINS]
    for setting, methods in PER_TARGET.items():
        out += [f"{setting}-{d}-{m}-s{s}" for s in SEEDS for d in DOMAINS for m in methods]
    return out


def maxlen_unit(a) -> dict:
    """The books teacher (minilm-l6, 2 epochs, lr 5e-5, batch 32, seed 1) at 128 and 64
    tokens, evaluated after each epoch on all 300 dev rows (no selection: the last epoch is
    the figure)."""
    from lmdistill import api
    from lmdistill import config as C

    rows, bs = 1700, 32
    out = {}
    for length in (128, 64):
        t = time.time()
        cfg = C.build(C.FinetuneConfig, overrides={
            "output_dir": f"{a.root}/maxlen/len{length}", "model.name": "minilm-l6",
            "data.task": "amazon-books", "data.max_length": length, "train.epochs": 2,
            "train.lr": 5e-5, "train.batch_size": bs, "train.seed": TEACHER_SEED,
            "train.num_threads": a.threads, "train.eval_every": math.ceil(rows / bs),
            "train.progress": False})
        res = api.finetune(cfg, resume=True)
        log = Path(cfg.output_dir) / "metrics.jsonl"
        evals = [r for r in map(json.loads, log.read_text().splitlines())
                 if r.get("type") == "eval"]
        out[str(length)] = {"accuracy_per_epoch": [r["accuracy"] for r in evals],
                            "accuracy_last": evals[-1]["accuracy"],
                            "train_examples_per_s": res["train_examples_per_s"],
                            "train_seconds": res["train_seconds"],
                            "wall_seconds": round(time.time() - t, 1)}
    diff = out["64"]["accuracy_last"] - out["128"]["accuracy_last"]
    n = 300
    p = out["128"]["accuracy_last"]
    return {"domain": "books", "dev_rows": n, "by_max_length": out,
            "diff_64_minus_128": round(diff, 4),
            "binomial_se_one_run": round(math.sqrt(p * (1 - p) / n), 4),
            "use_64": diff >= -0.01}


def pipeline_unit(a, unit: str) -> dict:
    from lmdistill import api
    from lmdistill import config as C

    parts = unit.split("-")
    setting, method, seed = parts[0], parts[-2], int(parts[-1][1:])
    targets = [f"amazon-{d}" for d in (DOMAINS if len(parts) == 3 else parts[1].split("+"))]
    cfg = C.build(C.MetaKDConfig, overrides={
        "output_dir": f"{a.root}/{unit}", "data.max_length": a.max_length,
        "metakd.targets": targets,
        "metakd.methods": ["metakd" if method in ("meta", "noweights") else method],
        "metakd.fraction": 0.1 if setting == "frac0.1" else 1.0,
        "metakd.no_in_domain": setting == "noindomain",
        "metakd.student_weights": method != "noweights",
        "metakd.stage1_epochs": 1, "metakd.stage2_epochs": 2, "train.epochs": 3,
        "teacher_train.epochs": 2, "train.seed": seed, "teacher_train.seed": TEACHER_SEED,
        "train.num_threads": a.threads, "teacher_train.num_threads": a.threads,
        "train.progress": False, "teacher_train.progress": False,
        **dict(C.parse_override(o) for o in a.override)})
    res = api.metakd(cfg, resume=True)
    if method == "noweights":  # the ablation's students under their own name
        res["per_domain"] = {"metakd_noweights": res["per_domain"].pop("metakd")}
        res["per_domain_select"] = {"metakd_noweights": res["per_domain_select"].pop("metakd")}
        res["average"] = {"metakd_noweights": res["average"].pop("metakd")}
    return {"setting_name": setting, "method": method, "seed": seed,
            "teacher_seed": TEACHER_SEED, "max_length": a.max_length, **res}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--unit")
    ap.add_argument("--list-units", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=128)  # maxlen: 64 lost 1.67 points
    ap.add_argument("--root", default="runs/bench/metakd")
    ap.add_argument("-o", "--override", action="append", default=[],
                    help="section.field=value on the unit's MetaKDConfig (smoke runs only: "
                         "e.g. data.limit=16; a result so made is not the unit's figure)")
    a = ap.parse_args()
    if a.list_units or not a.unit:
        print("\n".join(units()))
        return
    if a.unit not in units():
        ap.error(f"unknown unit '{a.unit}' (--list-units)")
    import torch

    torch.set_num_threads(a.threads)
    t0 = time.time()
    load0 = round(os.getloadavg()[0], 2)  # the machine is shared: how busy it was
    figures = maxlen_unit(a) if a.unit == "maxlen" else pipeline_unit(a, a.unit)
    figures = {"unit": a.unit, "threads": a.threads, "overrides": a.override,
               "load_average_1min": {"start": load0, "end": round(os.getloadavg()[0], 2)},
               "unit_wall_seconds": round(time.time() - t0, 1), **figures}
    write_result(f"metakd_{a.unit}", figures,
                 " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv]))


if __name__ == "__main__":
    main()
