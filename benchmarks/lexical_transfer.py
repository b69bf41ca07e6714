"""Lexical KD (issue 13), transfer: does gloss-classification training help or hurt NLU?

The same 2-layer student shape (teacher layers [2, 5] of all-MiniLM-L6-v2), fine-tuned with a
fresh head (``model.new_head``) on WiC, MRPC, RTE, CoLA, STS-B, SST-2 and CIKM:

- ``plain``: the layer subset of the pretrained encoder (no lexical training);
- ``lexical``: the same init after gloss classification on SemCor (``benchmarks/wsd.py``'s
  directly trained student, ``runs/bench/wsd/direct/model``);
- ``lexical-kd``: the student distilled from the gloss teacher (``runs/bench/wsd/kd/model``).

    .venv/bin/python benchmarks/lexical_transfer.py --students plain --seeds 1 2 3

Same rows, steps, learning rate and seed for every student; SST-2 and CIKM for the first seed
only (``--big-seeds``). Writes
``results/lextransfer_<task>_<student>_s<seed>.json``; rows already there are skipped.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from common import RESULTS, write_result

from lmdistill import api
from lmdistill import config as C
from lmdistill.methods.kd.run import make_student

STUDENTS = {"plain": "runs/bench/lextransfer/plain-init",
            "lexical": "runs/bench/wsd/direct/model",
            "lexical-kd": "runs/bench/wsd/kd/model"}
#: training rows per task (None: all); SST-2 and CIKM are subsampled to keep a CPU run short
LIMITS = {"wic": None, "mrpc": None, "rte": None, "cola": None, "stsb": None, "sst2": 8000,
          "cikm": 8000}
BIG = {"sst2", "cikm"}  # run for the first --big-seeds seeds only (3 seeds: the small tasks)

ap = argparse.ArgumentParser()
ap.add_argument("--students", nargs="+", default=["plain", "lexical"])
ap.add_argument("--tasks", nargs="+", default=list(LIMITS))
ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
ap.add_argument("--epochs", type=float, default=3)
ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--big-seeds", type=int, default=1, help="seeds of SST-2 and CIKM")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--root", default="runs/bench/lextransfer")
a = ap.parse_args()
cmd = " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv])

plain = Path(STUDENTS["plain"])
if "plain" in a.students and not (plain / "config.json").exists():
    make_student(C.StudentConfig(kind="subset", num_layers=2), "minilm-l6", "sst2", plain)

for seed in a.seeds:
    for task in a.tasks:
        if task in BIG and seed not in a.seeds[: a.big_seeds]:
            continue
        for student in a.students:
            name = f"lextransfer_{task}_{student}_s{seed}"
            if (RESULTS / f"{name}.json").exists():
                continue
            model = STUDENTS[student]
            if not (Path(model) / "config.json").exists():
                print(f"skip {name}: {model} does not exist yet (run benchmarks/wsd.py)")
                continue
            res = api.finetune(C.build(C.FinetuneConfig, overrides={
                "output_dir": f"{a.root}/{task}-{student}-s{seed}", "model.name": model,
                "model.new_head": True, "data.task": task, "data.limit": LIMITS.get(task),
                "data.max_length": 128, "train.epochs": a.epochs, "train.lr": a.lr,
                "train.batch_size": 32, "train.seed": seed, "train.num_threads": a.threads,
                "train.progress": False, "train.eval_every": None}), resume=True)
            write_result(name, {"task": task, "student": student, "model": model,
                                "seed": seed, **res}, cmd)
