"""Two fine-tuned teachers (minilm-l6 and sre-minilm-l6 on SST-2) distilled into one 3-layer
student with each weighting strategy, against each single teacher, over several seeds.

Each (row, seed) is one run -> results/multiteacher_sst2_<row>_s<seed>.json (existing ones
are skipped). The student is the 3-layer subset of the minilm-l6 teacher; logit KD.

    .venv/bin/python benchmarks/multi_teacher.py --limit 8000 --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from common import RESULTS, write_result

from lmdistill import api
from lmdistill import config as C
from lmdistill.methods.kd.run import distill

ap = argparse.ArgumentParser()
ap.add_argument("--teachers", nargs=2, default=["runs/bench/teacher-sst2/model",
                                               "runs/bench/teacher-sst2-sre/model"])
ap.add_argument("--limit", type=int, default=8000)
ap.add_argument("--epochs", type=float, default=1)
ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
ap.add_argument("--threads", type=int, default=None)
ap.add_argument("--root", default="runs/bench/multiteacher")
ap.add_argument("--only", default=None)
a = ap.parse_args()
cmd = " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv])
t1, t2 = a.teachers
ROWS = {
    "minilm-only": {"teacher.name": t1},
    "sre-only": {"teacher.name": t2, "student.base": t1},
    "uniform": {"teacher.name": t1, "teacher.names": [t2], "teacher.strategy": "uniform"},
    "confidence": {"teacher.name": t1, "teacher.names": [t2], "teacher.strategy": "confidence"},
    "entropy": {"teacher.name": t1, "teacher.names": [t2], "teacher.strategy": "entropy"},
    "gold": {"teacher.name": t1, "teacher.names": [t2], "teacher.strategy": "gold"},
}
teacher_acc = {t: api.evaluate(t, "sst2", "dev", progress=False)["accuracy"] for t in (t1, t2)}
for seed in a.seeds:
    for name, ov in ROWS.items():
        if a.only and name != a.only:
            continue
        out_json = RESULTS / f"multiteacher_sst2_{name}_s{seed}.json"
        if out_json.exists():
            continue
        run_dir = Path(a.root) / f"{name}-s{seed}"
        print(f"== {name} seed {seed}")
        res = distill(C.build(C.DistillConfig, overrides={
            **ov, "output_dir": str(run_dir), "data.task": "sst2", "data.limit": a.limit,
            "student.kind": "subset", "student.num_layers": 3, "kd.alpha": 0.7,
            "train.epochs": a.epochs, "train.lr": 1e-4, "train.seed": seed,
            "train.eval_every": 50, "train.progress": False, "train.num_threads": a.threads}))
        curve = [r for r in map(__import__("json").loads,
                                (run_dir / "metrics.jsonl").read_text().splitlines())
                 if r["type"] == "eval"]
        write_result(f"multiteacher_sst2_{name}_s{seed}", {
            "row": name, "seed": seed, "limit": a.limit, "epochs": a.epochs,
            "teacher_accuracy": teacher_acc, "accuracy": res["accuracy"],
            "best_step": res["best_step"],
            "curve": [[r["step"], r["accuracy"]] for r in curve], "train": res},
            f"{cmd} --seeds {seed} --only {name}")
