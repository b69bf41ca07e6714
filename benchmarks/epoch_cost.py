"""One epoch of the same 3-layer student, in one process, back to back: plain fine-tuning vs
logit KD from a cached teacher vs logit KD with the teacher run online. Ratio of training
throughput (examples/s inside training steps).

    .venv/bin/python benchmarks/epoch_cost.py --teacher runs/bench/teacher-sst2/model --limit 4000
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from common import write_result

from lmdistill import api
from lmdistill import config as C
from lmdistill.methods.kd.run import distill, make_student

ap = argparse.ArgumentParser()
ap.add_argument("--teacher", default="runs/bench/teacher-sst2/model")
ap.add_argument("--limit", type=int, default=4000)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
tmp = Path(tempfile.mkdtemp(prefix="epochcost-"))
common = {"data.task": "sst2", "data.limit": a.limit, "data.eval_limit": 64,
          "train.epochs": 1, "train.batch_size": 32, "train.lr": 1e-4, "train.progress": False,
          "train.num_threads": a.threads}
init = tmp / "init"
make_student(C.StudentConfig(kind="subset", num_layers=3), a.teacher, "sst2", init)
ft = api.finetune(C.build(C.FinetuneConfig, overrides={
    **common, "output_dir": str(tmp / "ft"), "model.name": str(init)}))
kd_ov = {**common, "teacher.name": a.teacher, "student.kind": "subset", "student.num_layers": 3,
         "kd.alpha": 0.7, "teacher.cache_dir": str(tmp / "cache")}
kd = distill(C.build(C.DistillConfig, overrides={**kd_ov, "output_dir": str(tmp / "kd")}))
on = distill(C.build(C.DistillConfig, overrides={**kd_ov, "output_dir": str(tmp / "kd-online"),
                                                 "teacher.cache": False}))
res = {"examples": a.limit, "threads": a.threads,
       "finetune_ex_s": ft["train_examples_per_s"], "kd_ex_s": kd["train_examples_per_s"],
       "online_ex_s": on["train_examples_per_s"],
       "ratio_cached": ft["train_examples_per_s"] / kd["train_examples_per_s"],
       "ratio_online": ft["train_examples_per_s"] / on["train_examples_per_s"]}
print(res)
write_result("epochcost_sst2", res, " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv]))
