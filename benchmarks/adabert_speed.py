"""CPU inference speed of a task's AdaBERT students next to the MiniLM-L6 teacher, the BiLSTM
student of the distill matrix (same architecture: built with `make-student --kind bilstm`,
timed only; its accuracy is the distill matrix's) and the BERT-base-sized reference
(all-mpnet-base-v2, random head; `benchmarks/fetch_mpnet.sh`), side by side in one run on the
same real dev sentences, batch 1 and 32, a fixed thread count.

    .venv/bin/python benchmarks/adabert_speed.py --task sst2 --threads 2
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from common import RESULTS, write_result

from lmdistill import config as C
from lmdistill.bench import bench, table
from lmdistill.methods.kd.run import make_student

ap = argparse.ArgumentParser()
ap.add_argument("--task", default="sst2")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--repeats", type=int, default=5)
ap.add_argument("--reference", default="runs/models/all-mpnet-base-v2")
ap.add_argument("--root", default="runs/bench")
a = ap.parse_args()
rows = {p.stem.split("_", 2)[2]: json.loads(p.read_text())
        for p in sorted(RESULTS.glob(f"adabert_{a.task}_*.json"))}
if "search" not in rows:
    sys.exit(f"no adabert_{a.task}_search.json yet")
teacher = rows["search"]["teacher"]
bilstm = Path(a.root) / "adabert" / a.task / "bilstm-timing"
if not (bilstm / "config.json").exists():
    make_student(C.StudentConfig(kind="bilstm"), teacher, a.task, bilstm)
models = {"teacher": teacher, **{f"adabert-{r}": v["model_dir"] for r, v in rows.items()},
          "bilstm (timing only)": str(bilstm)}
if Path(a.reference).exists():
    models["bert-base-sized (mpnet, random head)"] = a.reference
res = bench(models, a.task, "dev", (1, 32), threads=a.threads, repeats=a.repeats)
print(table(res))
write_result(f"adabertspeed_{a.task}", res,
             " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv]))
