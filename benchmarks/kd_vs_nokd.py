"""Issue 9's table: KD vs no-KD at matched steps, with the distillation defaults and no
per-task tuning, for 2- and 3-layer students (teacher-layer subsets of a fine-tuned
all-MiniLM-L6-v2) on SST-2, MRPC, CoLA, STS-B and RT, 3 seeds.

Per task: the teacher (``minilm-l6`` fine-tuned, 3 epochs, lr 5e-5; or ``--teacher``), then
per (layers, seed) the student init saved once (``make_student``), ``finetune`` of that init
(no KD) and ``distill`` from the teacher with the ``DistillConfig`` defaults (only the run
length, batch size, rows and seed are set here; the KD run gets the no-KD run as
``kd.reference``, so its report says whether KD helped).

    .venv/bin/python benchmarks/kd_vs_nokd.py --task mrpc --seeds 1 2 3

Writes ``results/kdvs_<task>_s<layers>_<kd|nokd>_s<seed>.json`` (rows already there are
skipped) and ``results/kdvs_<task>_teacher.json``. ``--augment 4`` adds ``kd-eda4`` rows: KD
whose transfer set also holds 4 EDA copies of each training row (``-o kd.augment=eda``: the
copies ``lmdistill augment`` writes for the run's rows and seed, labelled by the teacher),
stopped at the no-KD run's step count.

``--sweep`` adds, per (layers, seed), KD runs with α, τ or the learning rate moved off the
default one at a time and in pairs, or hidden-state KD added (``SWEEP``; τ rows are skipped for
regression, which has no τ), and no-KD runs with the learning rate moved (``NOKD_SWEEP``, so a
KD variant's lr has a no-KD run to match):
``results/kdsweep_<task>_s<layers>_<variant>_s<seed>.json``. They are the measurements the
defaults are checked against, next to the default's own ``kd`` row.
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

#: --sweep: variant name -> the KD settings it changes from the DistillConfig defaults
SWEEP = {"a0.9": {"kd.alpha": 0.9}, "t1": {"kd.temperature": 1.0},
         "t4": {"kd.temperature": 4.0}, "a0.9-t1": {"kd.alpha": 0.9, "kd.temperature": 1.0},
         "a0.9-t4": {"kd.alpha": 0.9, "kd.temperature": 4.0}, "lr5e-5": {"train.lr": 5e-5},
         "lr2e-4": {"train.lr": 2e-4}, "hidden": {"kd.features": ["hidden"]}}
#: --sweep: the no-KD run with a setting moved (so a KD variant has a no-KD run to match)
NOKD_SWEEP = {"nokd-lr2e-4": {"train.lr": 2e-4}}

#: training rows per task (None: all): SST-2 is subsampled to keep a CPU run short
LIMITS = {"sst2": 8000}

ap = argparse.ArgumentParser()
ap.add_argument("--task", default="mrpc")
ap.add_argument("--layers", nargs="+", type=int, default=[2, 3])
ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
ap.add_argument("--epochs", type=float, default=3.0,
                help="fixed epochs, no early stopping (3: the DistillConfig default before "
                     "issue 26, which these rows were run with)")
ap.add_argument("--teacher-epochs", type=float, default=3)
ap.add_argument("--teacher", default=None, help="a fine-tuned teacher folder to reuse "
                "(default: fine-tune minilm-l6 into <root>/<task>/teacher)")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--root", default="runs/bench/kdvs")
ap.add_argument("--augment", type=int, default=0, metavar="N",
                help="also a KD row whose transfer set adds N EDA copies of every training row "
                     "(teacher-labelled, soft loss only), at the no-KD run's steps")
ap.add_argument("--sweep", action="store_true",
                help="also KD runs with α, τ and lr moved off the defaults (SWEEP)")
ap.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                help="--sweep: only these variants (of SWEEP and NOKD_SWEEP)")
a = ap.parse_args()
if a.variants and (bad := set(a.variants) - set(SWEEP) - set(NOKD_SWEEP)):
    ap.error(f"unknown --variants {sorted(bad)}; known: {[*SWEEP, *NOKD_SWEEP]}")
cmd = " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv])
root = Path(a.root) / a.task
common = {"data.task": a.task, "data.limit": LIMITS.get(a.task), "train.batch_size": 32,
          "train.num_threads": a.threads, "train.progress": False, "train.eval_every": None}
defaults = C.DistillConfig()
epochs = a.epochs
# the rows' fixed schedule: DistillConfig's own now runs until it stops improving (issue 26)
common.update({"train.early_stopping_patience": None, "train.eval_each_epoch": False})

teacher = Path(a.teacher) if a.teacher else root / "teacher" / "model"
if not (teacher / "config.json").exists():
    api.finetune(C.build(C.FinetuneConfig, overrides={
        **common, "output_dir": str(teacher.parent), "model.name": "minilm-l6",
        "train.lr": 5e-5, "train.epochs": a.teacher_epochs, "train.seed": 1}), resume=True)
if not (RESULTS / f"kdvs_{a.task}_teacher.json").exists():
    res = api.evaluate(str(teacher), a.task, "dev", progress=False)
    write_result(f"kdvs_{a.task}_teacher", {"task": a.task, "teacher": str(teacher), **res},
                 cmd)

for seed in a.seeds:
    for k in a.layers:
        init = root / f"init-s{k}"
        if not (init / "config.json").exists():
            make_student(C.StudentConfig(kind="subset", num_layers=k), str(teacher), a.task,
                         init)
        nokd_dir = root / f"s{k}-nokd-s{seed}"
        name = f"kdvs_{a.task}_s{k}_nokd_s{seed}"
        if not (RESULTS / f"{name}.json").exists():
            res = api.finetune(C.build(C.FinetuneConfig, overrides={
                **common, "output_dir": str(nokd_dir), "model.name": str(init),
                "train.lr": defaults.train.lr, "train.epochs": epochs, "train.seed": seed}),
                resume=True)
            write_result(name, {"task": a.task, "layers": k, "kd": False, "seed": seed,
                                **res}, cmd)
        # the no-KD run as the KD runs' kd.reference, where its folder is here (a row taken
        # from results/ on another machine has none)
        ref = {"kd.reference": str(nokd_dir)} if (nokd_dir / "metrics.json").exists() else {}
        name = f"kdvs_{a.task}_s{k}_kd_s{seed}"
        if not (RESULTS / f"{name}.json").exists():
            res = distill(C.build(C.DistillConfig, overrides={
                **common, "output_dir": str(root / f"s{k}-kd-s{seed}"),
                "teacher.name": str(teacher), "student.kind": "pretrained",
                "student.base": str(init), "train.epochs": epochs, "train.seed": seed,
                **ref}), resume=True)
            write_result(name, {"task": a.task, "layers": k, "kd": True, "seed": seed,
                                "alpha": defaults.kd.alpha,
                                "temperature": defaults.kd.temperature, **res}, cmd)
        name = f"kdvs_{a.task}_s{k}_kd-eda{a.augment}_s{seed}"
        if a.augment and not (RESULTS / f"{name}.json").exists():
            steps = json.loads((RESULTS / f"kdvs_{a.task}_s{k}_nokd_s{seed}.json")
                               .read_text())["steps"]
            res = distill(C.build(C.DistillConfig, overrides={
                **common, "output_dir": str(root / f"s{k}-kd-eda{a.augment}-s{seed}"),
                "teacher.name": str(teacher), "student.kind": "pretrained",
                "student.base": str(init), "train.max_steps": steps, "train.seed": seed,
                "kd.augment": "eda", "kd.augment_copies": a.augment,
                **ref}), resume=True)
            write_result(name, {"task": a.task, "layers": k, "kd": True, "seed": seed,
                                "augment": f"eda x{a.augment}", "alpha": defaults.kd.alpha,
                                "temperature": defaults.kd.temperature, **res}, cmd)
        for variant, moved in NOKD_SWEEP.items() if a.sweep else ():
            name = f"kdsweep_{a.task}_s{k}_{variant}_s{seed}"
            if a.variants and variant not in a.variants or (RESULTS / f"{name}.json").exists():
                continue
            ov = {**common, "output_dir": str(root / f"s{k}-{variant}-s{seed}"),
                  "model.name": str(init), "train.lr": defaults.train.lr, "train.epochs": epochs,
                  "train.seed": seed, **moved}
            res = api.finetune(C.build(C.FinetuneConfig, overrides=ov), resume=True)
            write_result(name, {"task": a.task, "layers": k, "kd": False, "seed": seed,
                                "variant": variant, "lr": ov["train.lr"], **res}, cmd)
        for variant, moved in SWEEP.items() if a.sweep else ():
            name = f"kdsweep_{a.task}_s{k}_{variant}_s{seed}"
            skip = a.variants and variant not in a.variants
            if skip or (RESULTS / f"{name}.json").exists() or (
                    "kd.temperature" in moved and api.get_task(a.task).is_regression):
                continue
            ov = {**common, "output_dir": str(root / f"s{k}-kd-{variant}-s{seed}"),
                  "teacher.name": str(teacher), "student.kind": "pretrained",
                  "student.base": str(init), "train.epochs": epochs, "train.seed": seed,
                  **ref, **moved}
            res = distill(C.build(C.DistillConfig, overrides=ov), resume=True)
            write_result(name, {"task": a.task, "layers": k, "kd": True, "seed": seed,
                                "variant": variant,
                                "alpha": ov.get("kd.alpha", defaults.kd.alpha),
                                "temperature": ov.get("kd.temperature", defaults.kd.temperature),
                                "lr": ov.get("train.lr", defaults.train.lr), **res}, cmd)
