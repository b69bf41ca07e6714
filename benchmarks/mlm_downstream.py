"""Issue 10, last step: the masked-LM students of the study (benchmarks/mlm_multiteacher.py)
fine-tuned on SST-2, MRPC and RTE, next to the same-shape student that never saw MLM training
("init": teacher layers [2, 5] of all-MiniLM-L6-v2) and the MLM-trained student without KD.
The MLM head is dropped; a fresh classifier is trained. Same data, steps, lr and seed for every
row of a task.

    .venv/bin/python benchmarks/mlm_downstream.py --students init nokd single-minilm-full \
        uniform gold --student-seed 1 --threads 1
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from common import RESULTS, write_result

from lmdistill import api
from lmdistill import config as C

TASKS = {  # task: (train overrides, eval_every)
    "sst2": {"data.limit": 8000, "train.epochs": 1},
    "mrpc": {"train.epochs": 3},
    "rte": {"train.epochs": 2},
}
ap = argparse.ArgumentParser()
ap.add_argument("--root", default="runs/bench/mlm")
ap.add_argument("--students", nargs="+",
                default=["init", "nokd", "single-minilm-full", "uniform", "gold"])
ap.add_argument("--student-seed", type=int, default=1, help="which study seed's student")
ap.add_argument("--seed", type=int, default=42, help="fine-tuning seed")
ap.add_argument("--tasks", nargs="+", default=list(TASKS))
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--force", action="store_true")
a = ap.parse_args()
root = Path(a.root)

for task in a.tasks:
    for st in a.students:
        name = f"mlmdown_{task}_{st}_s{a.student_seed}"
        if (RESULTS / f"{name}.json").exists() and not a.force:
            continue
        model = (root / "student-init" if st == "init"
                 else root / "study" / f"{st}-s{a.student_seed}" / "model")
        out = root / "downstream" / task / f"{st}-s{a.student_seed}"
        res = api.finetune(C.build(C.FinetuneConfig, overrides={
            **TASKS[task], "output_dir": str(out), "data.task": task, "model.name": str(model),
            "train.lr": 1e-4, "train.batch_size": 32, "train.seed": a.seed,
            "train.num_threads": a.threads, "train.progress": False}), resume=True)
        cmd = " ".join(shlex.quote(x) for x in [
            ".venv/bin/python", "benchmarks/mlm_downstream.py", "--students", st,
            "--student-seed", str(a.student_seed), "--tasks", task,
            "--threads", str(a.threads)])
        write_result(name, {"task": task, "student": st, "student_seed": a.student_seed,
                            "student_model": str(model), "seed": a.seed, **res}, cmd)
