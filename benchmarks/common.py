"""Shared helpers of the benchmark scripts: each writes one JSON file under results/ with the
exact command that produced it, the machine it ran on and its figures."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

RESULTS = Path(os.environ.get("LMDISTILL_BENCH_RESULTS", Path(__file__).parent / "results"))
# the data directory: $LMDISTILL_DATA, else ../shared/data beside the checkout (as the Makefile)
os.environ.setdefault("LMDISTILL_DATA",
                      str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def machine() -> dict:
    """Where a figure came from: cores and threads, plus (since issue 7) the CPU model, its ISA
    (AVX2 / AVX-512 / VNNI / AMX) and the GPU, if any (lmdistill.hardware)."""
    import torch

    from lmdistill.hardware import machine_info

    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), **machine_info()}


def write_result(name: str, figures: dict, command: str | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    cmd = command or " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
    rec = {"name": name, "command": cmd, "date": time.strftime("%Y-%m-%d %H:%M"),
           "machine": machine(), **figures}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(rec, indent=2))
    print(f"wrote {path}")
    return path
