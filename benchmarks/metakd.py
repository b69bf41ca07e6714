"""Meta-KD (issue 12) on the four Amazon domains (books, dvd, electronics, kitchen): the
meta-distilled 3-layer student of every domain next to the single-domain, mixed-domain,
multi-task and no-KD baselines, all in one pipeline run per seed and setting.

    .venv/bin/python benchmarks/metakd.py --seed 1                      # 100% of the data
    .venv/bin/python benchmarks/metakd.py --seed 1 --fraction 0.1       # 10% of the target
    .venv/bin/python benchmarks/metakd.py --seed 1 --no-in-domain       # target never seen

Writes ``results/metakd_<setting>_s<seed>.json``; BENCHMARKS.md averages the seeds.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from common import write_result

from lmdistill import api
from lmdistill import config as C

ap = argparse.ArgumentParser()
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--fraction", type=float, default=1.0)
ap.add_argument("--no-in-domain", action="store_true")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--max-length", type=int, default=128)
ap.add_argument("--teacher-epochs", type=float, default=2)
ap.add_argument("--root", default="runs/bench/metakd")
a = ap.parse_args()
setting = "noindomain" if a.no_in_domain else f"frac{a.fraction:g}"
cfg = C.build(C.MetaKDConfig, overrides={
    "output_dir": f"{a.root}/{setting}-s{a.seed}", "data.max_length": a.max_length,
    "metakd.fraction": a.fraction, "metakd.no_in_domain": a.no_in_domain,
    "train.seed": a.seed, "teacher_train.seed": a.seed, "train.num_threads": a.threads,
    "teacher_train.num_threads": a.threads, "teacher_train.epochs": a.teacher_epochs,
    "train.progress": False, "teacher_train.progress": False})
res = api.metakd(cfg, resume=True)
write_result(f"metakd_{setting}_s{a.seed}", {"setting_name": setting, "seed": a.seed, **res},
             " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv]))
