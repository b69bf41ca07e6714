"""Multi-teacher masked-LM distillation with domain experts (issue 31), in units.

Teachers, each a whole-model MLM trained here on its own domain (64-token blocks, the
domain's content-hash held-out split):

- ``reviews``:    all-MiniLM-L6-v2 on ``mlm:reviews`` (Amazon, SST-2, RT training texts);
- ``questions``:  the SRE-fine-tuned MiniLM-L6 on ``mlm:questions`` (CIKM, CLINC150);
- ``literature``: paraphrase-MiniLM-L3-v2 (converted from its ONNX package) on
  ``mlm:literature`` (Shakespeare, NLTK Genesis / Inaugural / State of the Union); where that
  package is not installed, all-MiniLM-L6-v2 (the result says which).

The study's corpus is the three domains as domains (``mlm:reviews|questions|literature``: each
blocked and split exactly as alone, so no teacher saw a held-out block of the study, the first
``--blocks`` blocks of each), static masks shared by every row, the top-k cache keeping the
tail mass and the gold logit. Rows per student setting and seed, all from the same initial
weights (saved once per setting and seed), the same steps, data and masks, held-out accuracy
and loss per domain every ``--eval-every`` steps:

- ``nokd`` (gold loss only), ``single-<teacher>`` for each teacher, ``uniform`` (the three
  teachers averaged), ``confidence`` / ``entropy`` / ``gold`` (per-token prediction
  weighting), all at ``--alpha`` (soft weight; 1 − α on the gold tokens, the same for every KD
  row), and with ``--alpha 1`` the soft-only rows (``..._a1``).

Student settings: ``scratch`` (4 layers, 256 wide, 4 heads, FFN 1024, random init, the
teachers' vocabulary) and ``subset`` (layers [2, 5] of all-MiniLM-L6-v2, a fresh MLM head).

Units (each writes its JSONs as it finishes; a later unit reuses what is on disk, else
retrains the teachers deterministically from their seed): ``teachers``, then per student
setting and seed the row groups ``a`` (nokd and the single teachers), ``b`` (uniform and the
weightings) and ``c`` (``b`` at α = 1, soft targets only):

    .venv/bin/python benchmarks/mlm_domains.py --unit teachers
    .venv/bin/python benchmarks/mlm_domains.py --unit scratch-s1-a   # -b, -c; subset-s1-a ...
    .venv/bin/python benchmarks/mlm_domains.py --unit nlu-scratch-s1

``nlu-<setting>-s<seed>`` (item 5): the initial weights, the no-KD, uniform and ``--nlu-rows``
students of that setting and seed (retrained from their seed when not on disk), each
fine-tuned with a fresh head on SST-2 (8,000 rows, 1 epoch), MRPC (3 epochs) and RTE
(2 epochs), same rows, steps, lr and seed for every student of a task; writes
``results/mlmdomnlu_<setting>_<task>_<student>_s<seed>.json``.

Cost on this machine (Intel Xeon, AMX-BF16, 1 thread, bf16 chosen by the probe): a teacher
step (32 × 64 tokens, 6 layers) ~2-3.5 s, so the three teachers (150 steps each, the third
3 layers) take ~15-20 min; a student row of 300 steps ~8-20 min (KD rows read the cached
top-k of three teachers; the cache, ~10k blocks a teacher, is built once a unit). A group
of four rows plus the teachers and the cache fits the 75-minute unit.

Writes ``results/mlmdom_teacher_<name>.json`` and
``results/mlmdom_<setting>[_a<alpha>]_<row>_s<seed>.json``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from common import RESULTS, write_result

from lmdistill import api
from lmdistill import config as C
from lmdistill.methods.kd.run import distill
from lmdistill.methods.mlm.run import evaluate_mlm_model

DOMAINS = ("reviews", "questions", "literature")
ap = argparse.ArgumentParser()
ap.add_argument("--unit", required=True,
                help="teachers, or <scratch|subset>-s<seed>[-a|-b|-c]")
ap.add_argument("--root", default="runs/bench/mlmdom")
ap.add_argument("--teacher-steps", type=int, default=150)
ap.add_argument("--steps", type=int, default=300, help="student steps")
ap.add_argument("--eval-every", type=int, default=25)
ap.add_argument("--blocks", type=int, default=3600, help="blocks of each domain in the study")
ap.add_argument("--alpha", type=float, default=0.5)
ap.add_argument("--rows", default=None, help="comma-separated rows (default: the unit's "
                                                "group, or all)")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--nlu-rows", default="gold", help="nlu units: the weighted rows to fine-tune")
ap.add_argument("--smoke", action="store_true", help="a few steps and blocks; no result files")
a = ap.parse_args()
if a.smoke:
    a.teacher_steps, a.steps, a.eval_every, a.blocks = 2, 4, 2, 300
    a.root = a.root + "-smoke"
root = Path(a.root)
cmd = " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv])
CORPUS = "mlm:" + "|".join(DOMAINS)
BLOCK = 64


def l3_or_minilm() -> str:
    from lmdistill.errors import LmdistillError
    from lmdistill.models import hub

    try:  # a local folder once converted (a bare hub name would need the network)
        if Path(hub.resolve("paraphrase-minilm-l3")).exists():
            return "paraphrase-minilm-l3"
    except LmdistillError:  # its package is optional here; the result names the base
        pass
    return "minilm-l6"


BASES = {"reviews": "minilm-l6", "questions": "sre-minilm-l6", "literature": l3_or_minilm()}


def save(name: str, payload: dict) -> None:
    if not a.smoke:
        write_result(name, payload, cmd)


def teacher(domain: str) -> str:
    """The domain's teacher model folder (trained here when it is not on disk)."""
    out = root / f"teacher-{domain}"
    model = out / "model"
    if not (model / "config.json").exists():
        t0 = time.time()
        res = api.finetune(C.build(C.FinetuneConfig, overrides={
            "output_dir": str(out), "model.name": BASES[domain], "data.task": f"mlm:{domain}",
            "data.mlm_block_size": BLOCK, "train.epochs": 1, "train.max_steps": a.teacher_steps,
            "train.min_steps": a.teacher_steps, "train.lr": 1e-4, "train.batch_size": 32,
            "train.eval_batch_size": 64, "train.eval_every": a.teacher_steps,
            "train.warmup_ratio": 0.05, "train.seed": 1, "train.num_threads": a.threads,
            "train.progress": False}), resume=True)
        # on the study's held-out blocks of every domain (the same masks as the students)
        ev = evaluate_mlm_model(str(model), CORPUS, block_size=BLOCK, max_blocks=a.blocks)
        save(f"mlmdom_teacher_{domain}", {
            "teacher": domain, "base": BASES[domain], "steps": res["steps"],
            "own_heldout_accuracy": res["mlm_accuracy"], "params": res["params"],
            "train_examples_per_s": res["train_examples_per_s"],
            "study_heldout": {d: {"accuracy": ev[f"mlm_accuracy_{d}"],
                                  "loss": ev[f"mlm_loss_{d}"]} for d in DOMAINS},
            "seconds": round(time.time() - t0, 1)})
    return str(model)


def student_init(setting: str, seed: int) -> str:
    d = root / f"init-{setting}-s{seed}"
    if not (d / "config.json").exists():
        import torch

        from lmdistill.methods.mlm.run import load_mlm_model
        from lmdistill.models import hub
        from lmdistill.models.students import layer_subset, smaller

        torch.manual_seed(seed)
        base = load_mlm_model("minilm-l6")
        s = (layer_subset(base, [2, 5]) if setting == "subset" else
             smaller(base, 4, 256, 4, 1024, init="random"))
        hub.save_model(s, d, hub.load_tokenizer("minilm-l6"))
    return str(d)


def student_rows(setting: str, seed: int, need_models: bool = False) -> dict[str, str]:
    """Train the rows (``a.rows``) not yet in results (``need_models``: also those whose model
    is not on disk; their results are not written again); returns row -> model folder."""
    teachers = {d: teacher(d) for d in DOMAINS}
    init = student_init(setting, seed)
    tag = f"{setting}" + ("" if a.alpha == 0.5 else f"_a{a.alpha:g}")
    rows = {"nokd": None, **{f"single-{d}": [d] for d in DOMAINS},
            **{s: list(DOMAINS) for s in ("uniform", "confidence", "entropy", "gold")}}
    models = {}
    for name in a.rows.split(","):
        if name == "nokd" and a.alpha != 0.5:
            continue  # no teacher: the same row at every alpha
        names = rows[name]
        result = f"mlmdom_{setting if names is None else tag}_{name}_s{seed}"
        out = root / "study" / f"{result}"
        models[name] = str(out / "model")
        done = (RESULTS / f"{result}.json").exists() and not a.smoke
        if done and not (need_models and not (out / "model" / "config.json").exists()):
            continue
        common = {"data.task": CORPUS, "data.mlm_block_size": BLOCK,
                  "data.mlm_max_blocks": a.blocks, "data.mlm_static": True,
                  "output_dir": str(out), "train.seed": seed, "train.epochs": 1,
                  "train.max_steps": a.steps, "train.min_steps": a.steps,
                  "train.eval_every": a.eval_every, "train.batch_size": 32,
                  "train.eval_batch_size": 64, "train.lr": 5e-4, "train.warmup_ratio": 0.05,
                  "train.num_threads": a.threads, "train.progress": False}
        t0 = time.time()
        if names is None:
            res = api.finetune(C.build(C.FinetuneConfig, overrides={
                **common, "model.name": init}), resume=True)
        else:
            res = distill(C.build(C.DistillConfig, overrides={
                **common, "teacher.name": teachers[names[0]],
                "teacher.names": [teachers[t] for t in names[1:]],
                "teacher.strategy": name if name in ("confidence", "entropy", "gold")
                else "uniform", "teacher.cache_dir": str(root / "teacher-cache"),
                "teacher.topk": 32, "student.kind": "pretrained", "student.base": init,
                "kd.alpha": a.alpha, "kd.temperature": 1.0}), resume=True)
        curve = [{k: v for k, v in r.items() if k == "step" or k.startswith("mlm_")}
                 for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
                 if r.get("type") == "eval"]
        if done:
            continue
        save(result, {"setting": setting, "alpha": None if names is None else a.alpha,
                      "row": name, "seed": seed, "teachers": names, "steps": a.steps,
                      "blocks_per_domain": a.blocks, "curve": curve, "final": curve[-1],
                      "student_params": res.get("student_params", res.get("params")),
                      "train_examples_per_s": res["train_examples_per_s"],
                      "seconds": round(time.time() - t0, 1)})
    return models


NLU = {"sst2": {"data.limit": 8000, "train.epochs": 1}, "mrpc": {"train.epochs": 3},
       "rte": {"train.epochs": 2}}


def nlu(setting: str, seed: int) -> None:
    a.rows = ",".join(["nokd", "uniform", *a.nlu_rows.split(",")])
    models = {"init": student_init(setting, seed), **student_rows(setting, seed, True)}
    for task, over in NLU.items():
        for st, model in models.items():
            name = f"mlmdomnlu_{setting}_{task}_{st}_s{seed}"
            if (RESULTS / f"{name}.json").exists() and not a.smoke:
                continue
            res = api.finetune(C.build(C.FinetuneConfig, overrides={
                **over, "output_dir": str(root / "nlu" / setting / task / f"{st}-s{seed}"),
                "data.task": task, "model.name": model, "train.lr": 1e-4,
                "train.batch_size": 32, "train.seed": 42, "train.num_threads": a.threads,
                "train.progress": False,
                **({"data.limit": 64, "train.max_steps": 2} if a.smoke else {})}), resume=True)
            save(name, {"setting": setting, "task": task, "student": st, "seed": seed,
                        "student_model": model, **res})


GROUPS = {"a": ("nokd", *(f"single-{d}" for d in DOMAINS)),
          "b": ("uniform", "confidence", "entropy", "gold")}
GROUPS["c"] = GROUPS["b"]
if a.unit.startswith("nlu-"):
    parts = a.unit.split("-")
    if len(parts) != 3 or parts[1] not in ("scratch", "subset") or not parts[2][1:].isdigit():
        sys.exit(f"unknown unit '{a.unit}': nlu-<scratch|subset>-s<seed>")
    nlu(parts[1], int(parts[2][1:]))
elif a.unit == "teachers":
    for d in DOMAINS:
        teacher(d)
else:
    parts = a.unit.split("-")
    group = parts.pop() if parts[-1] in GROUPS else None
    ok = len(parts) == 2 and parts[0] in ("scratch", "subset") and parts[1][:1] == "s" \
        and parts[1][1:].isdigit()
    if not ok:
        sys.exit(f"unknown unit '{a.unit}': teachers, or <scratch|subset>-s<seed>[-a|-b|-c]")
    if group == "c":
        a.alpha = 1.0
    if a.rows is None:
        a.rows = ",".join(GROUPS[group] if group else GROUPS["a"] + GROUPS["b"])
    student_rows(parts[0], int(parts[1][1:]))
