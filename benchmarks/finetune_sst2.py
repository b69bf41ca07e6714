"""A model fine-tuned on the full SST-2 train set; dev accuracy, wall time, throughput.

    .venv/bin/python benchmarks/finetune_sst2.py [--model minilm-l6] [--epochs 1]
"""

from __future__ import annotations

import argparse
import shlex
import sys

from common import write_result

from lmdistill import api
from lmdistill import config as C

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="minilm-l6")
ap.add_argument("--task", default="sst2")
ap.add_argument("--epochs", type=float, default=1.0)
ap.add_argument("--lr", type=float, default=6e-5)
ap.add_argument("--out", default="runs/bench/teacher-sst2")
ap.add_argument("--threads", type=int, default=None)
ap.add_argument("--limit", type=int, default=None, help="seeded subset of the train split")
ap.add_argument("--resume", action="store_true")
a = ap.parse_args()

cfg = C.build(C.FinetuneConfig, overrides={
    "output_dir": a.out, "data.task": a.task, "model.name": a.model, "train.epochs": a.epochs,
    "train.lr": a.lr, "train.batch_size": 32, "train.eval_every": 500, "train.save_every": 250,
    "train.num_threads": a.threads, "data.limit": a.limit,
})
res = api.finetune(cfg, resume=a.resume)
cmd = " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv])
name = f"finetune_{a.task}_{a.model}" + (f"_limit{a.limit}" if a.limit else "")
write_result(name, {"model": a.model, "task": a.task,
                                              "epochs": a.epochs, "lr": a.lr,
                                              "limit": a.limit, **res}, cmd)
