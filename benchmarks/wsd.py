"""Lexical KD (issue 13): WSD F1 (official scorer) on SE2, SE3, SE07, SE13, SE15 and ALL for
the most-frequent-sense baseline, a gloss-classification teacher (all-MiniLM-L6-v2 fine-tuned
on ``gloss:N``: N SemCor instances, gold + 3 hard negatives each), a 2-layer student distilled
from it (logit + hidden KD) and the same student trained directly; with parameters.

    .venv/bin/python benchmarks/wsd.py --instances 20000 --threads 2

``--unit lmms-teacher`` (issue 28, part 1) instead builds the LMMS-style nearest-neighbour
sense teacher (:mod:`lmdistill.methods.lexical.lmms`): one encoder pass over SemCor with 5% of
its documents held out (seeded), every choice tuned on that held-out part, then the official F1
on the six sets with MFS beside it and the ≤4 / >4 candidates split, into
``wsd_lmms_tuning.json`` (as soon as tuning ends) and ``wsd_lmms_teacher.json``:

    .venv/bin/python benchmarks/wsd.py --unit lmms-teacher --threads 1

``--unit lmms-subset --layers 2`` does the same with the 2-layer subset of the encoder (the
student's shape, no lexical training) as the encoder, into ``wsd_lmms_subset-2.json``.
``--unit lmms-ablation`` (after it, same ``--root``) scores fixed variants of the tuned choice
(prior off, gloss off, other coverages) on the held-out part and the six sets, for reporting
only, into ``wsd_lmms_ablation.json``.

Rows already in results/ are skipped (``wsd_<row>.json``). ``--prior`` then scores each trained
row's model again as ``s + w·log prior(sense)`` (WordNet's tagged counts), with w chosen on SE07
from the grid below, into ``wsd_prior_<row>.json``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from common import RESULTS, write_result

from lmdistill import api
from lmdistill import config as C
from lmdistill.methods.kd.run import distill, make_student
from lmdistill.models import hub
from lmdistill.models.students import count_params

ap = argparse.ArgumentParser()
ap.add_argument("--instances", type=int, default=20000)
ap.add_argument("--epochs", type=float, default=1)
ap.add_argument("--layers", type=int, default=2)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--root", default="runs/bench/wsd")
ap.add_argument("--only", default="mfs,teacher,student-direct,student-kd")
ap.add_argument("--prior", action="store_true", help="score the trained rows again combined "
                "with WordNet's sense prior, its weight chosen on SE07 (wsd_prior_<row>.json)")
ap.add_argument("--unit", default=None, help="lmms-teacher: the nearest-neighbour sense teacher "
                "(issue 28) instead of the gloss rows")
ap.add_argument("--encoder", default="minilm-l6")
ap.add_argument("--holdout", type=float, default=0.05)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
cmd = " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv])


def lmms_teacher(encoder: str | None = None, tag: str = "teacher") -> None:
    import time

    import torch
    from transformers import AutoModel

    from lmdistill.methods.lexical import lmms, lmms_tune

    torch.set_num_threads(a.threads)
    t0 = time.time()
    encoder = encoder or a.encoder
    out = Path(a.root) / f"lmms-{encoder.replace('/', '_')}-h{a.holdout}-s{a.seed}"
    reused = (out / "index.json").exists()  # built by an earlier run: its build time is old
    build = lmms.build_sense_vectors(out, encoder, holdout=a.holdout, seed=a.seed)
    params = count_params(AutoModel.from_pretrained(hub.resolve(encoder)))
    tuning = lmms_tune.tune(out)
    base = {"unit": a.unit, "encoder": encoder, "params": params,
            "threads": torch.get_num_threads(), "sense_vectors": str(out),
            "reused_vectors": reused,
            "build": {k: v for k, v in build.items() if k != "heldout_documents"}}
    write_result("wsd_lmms_tuning" + ("" if tag == "teacher" else f"-{tag}"),
                 {**base, "tuning": tuning, "wall_seconds": round(time.time() - t0, 1)}, cmd)
    res = lmms_tune.evaluate_lmms(out)
    train_only = lmms_tune.evaluate_lmms(out, vectors="train")
    write_result(f"wsd_lmms_{tag}", {
        **base, "choice": tuning["choice"], "heldout_f1": tuning["heldout_f1"],
        "heldout_mfs_f1": tuning["heldout_mfs_f1"], **res,
        "train_vectors_f1": {n: r["model"]["f1"] for n, r in train_only["sets"].items()},
        "wall_seconds": round(time.time() - t0, 1)}, cmd)


def lmms_ablation() -> None:
    """The tuned teacher against fixed variants of its choice (prior off, gloss off, other
    coverages), each on the held-out SemCor part (train vectors) and on the six sets (all
    vectors): what each part adds. Reporting only; nothing here is chosen on a set."""
    import dataclasses
    import time

    import torch

    from lmdistill.data.wsd import score
    from lmdistill.methods.lexical import lmms, lmms_tune

    torch.set_num_threads(a.threads)
    t0 = time.time()
    out = Path(a.root) / f"lmms-{a.encoder.replace('/', '_')}-h{a.holdout}-s{a.seed}"
    tuned = lmms.SenseTeacher(out).choice
    variants = {"tuned": tuned, "no prior (w=0)": dataclasses.replace(tuned, w=0.0),
                "no gloss (beta=0)": dataclasses.replace(tuned, beta=0.0),
                "SemCor vectors only (beta=0, w=0)": dataclasses.replace(tuned, beta=0.0,
                                                                          w=0.0)}
    variants.update({f"coverage {c}": dataclasses.replace(tuned, coverage=c)
                     for c in lmms.COVERAGES if c != tuned.coverage})
    t = lmms.SenseTeacher(out, vectors="train")
    held = [lmms.Target(**x) for x in t.ix["heldout"]]
    cands = [t.candidates(x.lemma, x.pos) for x in held]
    keep = [i for i, c in enumerate(cands) if len(c) > 1]
    hv = lmms._load(out / "heldout.safetensors")["vectors"][keep]
    ids, cands = [held[i].id for i in keep], [cands[i] for i in keep]
    gold = {held[i].id: held[i].gold for i in keep}
    rows = {}
    for name, c in variants.items():
        pred, back = t.predict(ids, hv, cands, c)
        res = lmms_tune.evaluate_lmms(out, choice=c)
        rows[name] = {"choice": dataclasses.asdict(c), "heldout_f1": score(gold, pred)["f1"],
                      "heldout_backoff": back,
                      "sets": {n: {"f1": r["model"]["f1"], "mfs_f1": r["mfs"]["f1"],
                                   "backoff": r["backoff"],
                                   "le4": r["by_candidates"]["model"]["le4"]["f1"],
                                   "gt4": r["by_candidates"]["model"]["gt4"]["f1"]}
                               for n, r in res["sets"].items()}}
        print(name, {n: round(100 * r["f1"], 1) for n, r in rows[name]["sets"].items()},
              flush=True)
    write_result("wsd_lmms_ablation", {"unit": "lmms-ablation", "encoder": a.encoder,
                                       "sense_vectors": str(out), "threads": a.threads,
                                       "variants": rows,
                                       "wall_seconds": round(time.time() - t0, 1)}, cmd)


if a.unit == "lmms-teacher":
    lmms_teacher()
    sys.exit(0)
elif a.unit == "lmms-ablation":
    lmms_ablation()
    sys.exit(0)
elif a.unit == "lmms-subset":
    # the student's shape with no lexical training: the --layers subset of the encoder
    # (make_student's layer choice), used as the NN teacher's encoder
    init = Path(a.root) / f"student-init-{a.layers}"
    if not (init / "config.json").exists():
        make_student(C.StudentConfig(kind="subset", num_layers=a.layers), a.encoder, "gloss",
                     init)
    lmms_teacher(str(init), f"subset-{a.layers}")
    sys.exit(0)
elif a.unit is not None:
    sys.exit(f"unknown --unit {a.unit}: lmms-teacher, lmms-ablation, lmms-subset")
root, task = Path(a.root), f"gloss:{a.instances}"
common = {"data.task": task, "data.max_length": 96, "train.batch_size": 32,
          "train.epochs": a.epochs, "train.num_threads": a.threads, "train.progress": False,
          "train.eval_every": 1000}


def score(row: str, model: str | None, extra: dict) -> None:
    res = api.evaluate_wsd(model, max_length=96)
    params = count_params(hub.load_classifier(model, 2)) if model else 0
    write_result(f"wsd_{row}", {"row": row, "model": model, "params": params,
                                "instances": a.instances, **extra, **res}, cmd)


def todo(row: str) -> bool:
    return row in a.only.split(",") and not (RESULTS / f"wsd_{row}.json").exists()


if todo("mfs"):
    score("mfs", None, {})
teacher = root / "teacher"
if todo("teacher"):
    t = api.finetune(C.build(C.FinetuneConfig, overrides={
        **common, "output_dir": str(teacher), "model.name": "minilm-l6", "train.lr": 5e-5}),
        resume=True)
    score("teacher", str(teacher / "model"), {"train": t})
init = root / f"student-init-{a.layers}"
if not (init / "config.json").exists() and {"student-direct", "student-kd"} & set(
        a.only.split(",")):
    make_student(C.StudentConfig(kind="subset", num_layers=a.layers), "minilm-l6", task, init)
if todo("student-direct"):
    s = api.finetune(C.build(C.FinetuneConfig, overrides={
        **common, "output_dir": str(root / "direct"), "model.name": str(init),
        "train.lr": 1e-4}), resume=True)
    score("student-direct", str(root / "direct" / "model"), {"train": s})
if todo("student-kd"):
    s = distill(C.build(C.DistillConfig, overrides={
        **common, "output_dir": str(root / "kd"), "teacher.name": str(teacher / "model"),
        "student.kind": "pretrained", "student.base": str(init), "kd.features": ["hidden"],
        "kd.alpha": 0.5, "kd.temperature": 2.0, "train.lr": 1e-4}), resume=True)
    score("student-kd", str(root / "kd" / "model"), {"train": s})

PRIOR_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
if a.prior:
    for row, model in (("teacher", teacher / "model"), ("student-direct", root / "direct" /
                       "model"), ("student-kd", root / "kd" / "model")):
        done = RESULTS / f"wsd_{row}.json"
        if not done.exists() or (RESULTS / f"wsd_prior_{row}.json").exists():
            continue
        res = api.evaluate_wsd(str(model), max_length=96, prior_weights=PRIOR_GRID)
        write_result(f"wsd_prior_{row}", {"row": row, "model": str(model),
                                          "params": json.loads(done.read_text())["params"],
                                          "grid": list(PRIOR_GRID), **res}, cmd)
