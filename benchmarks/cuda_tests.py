"""The CUDA tests (``tests/e2e/test_cuda.py``: one per method) on this machine's GPU, with the
GPU's name and each test's outcome, or "not run: no GPU available" where there is none. Writes
``results/cuda_tests_<host kind>.json`` (``gpu`` when a GPU ran them, else ``nogpu``).

    .venv/bin/python benchmarks/cuda_tests.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import write_result

REPO = Path(__file__).resolve().parents[1]
CMD = ".venv/bin/python benchmarks/cuda_tests.py"

if not torch.cuda.is_available():
    write_result("cuda_tests_nogpu", {"status": "not run: no GPU available", "tests": {}}, CMD)
    sys.exit(0)

gpu = torch.cuda.get_device_name(0)
with tempfile.TemporaryDirectory() as d:
    report = Path(d) / "report.json"
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(REPO / "tests" / "e2e" / "test_cuda.py"), "-rA",
                        f"--junitxml={report.with_suffix('.xml')}"], cwd=REPO,
                       capture_output=True, text=True)
    import xml.etree.ElementTree as ET

    tests = {}
    for case in ET.parse(report.with_suffix(".xml")).getroot().iter("testcase"):
        kids = [c.tag for c in case]
        tests[case.get("name")] = ("failed" if {"failure", "error"} & set(kids) else
                                   "skipped" if "skipped" in kids else "passed")
write_result("cuda_tests_gpu", {
    "status": "passed" if p.returncode == 0 else f"failed (pytest exit {p.returncode})",
    "gpu": gpu, "tests": tests, "seconds": round(time.time() - t0, 1),
    "tail": p.stdout[-2000:]}, CMD)
print(json.dumps(tests, indent=1))
