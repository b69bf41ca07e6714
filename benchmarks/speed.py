"""CPU inference speed of a task's teacher and every student of its distill matrix, measured
side by side in one run (same real dev sentences, batch 1 and 32, fixed thread count).

    .venv/bin/python benchmarks/speed.py --task sst2 --threads 2
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from common import RESULTS, write_result

from lmdistill.bench import bench, table

ap = argparse.ArgumentParser()
ap.add_argument("--task", default="sst2")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--repeats", type=int, default=5)
a = ap.parse_args()
rows = [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"distill_{a.task}_*.json"))]
if not rows:
    sys.exit(f"no distill_{a.task}_*.json results yet")
models = {"teacher": rows[0]["teacher"], **{r["row"]: r["model_dir"] for r in rows}}
res = bench(models, a.task, "dev", (1, 32), threads=a.threads, repeats=a.repeats)
print(table(res))
write_result(f"speed_{a.task}", res,
             " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv]))
