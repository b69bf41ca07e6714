"""Teacher vs 3-layer student vs its INT8 (torchao, torch dynamic, ONNX Runtime), BF16 and ONNX
variants on SST-2 dev, and the backend `quantize --method auto` picks on this machine:
accuracy, latency at batch 1 and 32, throughput, size, all timed side by side in one run, with
the machine (CPU model, ISA, threads) recorded; all-mpnet-base-v2 (BERT-base-sized, random
head) timed as the reference the papers state speedups against, when it has been fetched.

    benchmarks/fetch_mpnet.sh && .venv/bin/python benchmarks/compress_sst2.py --threads 2
    .venv/bin/python benchmarks/compress_sst2.py --teacher runs/demo/teacher/model \
        --student runs/demo/student/model --root runs/bench/compress-demo   # after make demo
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from common import write_result

from lmdistill import api
from lmdistill.bench import bench, table
from lmdistill.compress.onnx import export_onnx
from lmdistill.compress.quantize import quantize, write_quantized

ap = argparse.ArgumentParser()
ap.add_argument("--teacher", default="runs/bench/teacher-sst2/model")
ap.add_argument("--student", default="runs/bench/sst2-matrix/s3-logit-hidden/model")
ap.add_argument("--reference", default="runs/models/all-mpnet-base-v2")
ap.add_argument("--root", default="runs/bench/compress")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--repeats", type=int, default=5)
a = ap.parse_args()
root = Path(a.root)
variants = {
    "student-int8-auto": lambda d: quantize(a.student, d, "auto", task="sst2",
                                            progress=False),
    "student-int8-torchao": lambda d: write_quantized(a.student, d, "torchao-int8"),
    "student-int8-torch-dynamic": lambda d: write_quantized(a.student, d, "torch-dynamic-int8"),
    "student-bf16": lambda d: write_quantized(a.student, d, "bf16"),
    "teacher-bf16": lambda d: write_quantized(a.teacher, d, "bf16"),
    "student-onnx": lambda d: export_onnx(a.student, d),
    "student-onnx-int8": lambda d: export_onnx(a.student, d, int8=True),
    "teacher-onnx-int8": lambda d: export_onnx(a.teacher, d, int8=True),
}
info = {}
for name, make in variants.items():
    d = root / name
    if not d.exists():
        info[name] = make(d)
        info[name].pop("machine", None)
models = {"teacher": a.teacher, "student-3L": a.student,
          **{n: str(root / n) for n in variants}}
acc = {n: api.evaluate(m, "sst2", "dev", progress=False)["accuracy"] for n, m in models.items()}
if Path(a.reference).exists():
    models["bert-base-sized (mpnet, random head)"] = a.reference
res = bench(models, "sst2", "dev", (1, 32), threads=a.threads, repeats=a.repeats)
import json  # noqa: E402

choice = json.loads((root / "student-int8-auto" / "quantization_choice.json").read_text())
for r in res["models"]:
    r["accuracy"] = acc.get(r["label"])
    if r["label"] == "student-int8-auto":
        r["chosen_backend"] = choice["method"]
res["auto_choice"] = {k: choice[k] for k in ("method", "speedup", "reasons", "measurements")}
res["teacher_dir"], res["student_dir"] = a.teacher, a.student
print(table(res))
res["export_info"] = info
write_result("compress_sst2", res, " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv]))
