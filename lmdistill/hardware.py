"""What machine a figure came from.

- :func:`cpu_info`: CPU model, the ISA features that decide INT8/BF16 speed (AVX2, AVX-512,
  AVX-512 VNNI, AVX-VNNI, AMX), what torch's kernels dispatch to, core and thread counts.
- :func:`machine_info`: the above plus torch/Python versions and the CUDA GPU, if any; every
  ``bench`` result and every ``quantize --method auto`` choice records it.
- :func:`cpu_has_bf16`: whether the CPU has bf16 arithmetic (AVX-512-BF16 or AMX-BF16), the
  CPUs on which ``train.mixed_precision=auto`` times bf16 against fp32 training steps.

ISA flags are read from ``/proc/cpuinfo`` on Linux (the kernel's names: ``avx512_vnni``,
``amx_int8`` ...); elsewhere only torch's own dispatch level is known.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

import torch


# kernel flag -> the name we print
ISA_FLAGS = {
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512",
    "avx512bw": "AVX-512BW",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "amx_tile": "AMX",
    "amx_int8": "AMX-INT8",
    "amx_bf16": "AMX-BF16",
    "asimd": "NEON",
    "asimddp": "NEON dot-product",
    "sve": "SVE",
}


# the flags that give a CPU bf16 arithmetic (dot products / tile multiplies in hardware)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def parse_cpuinfo(text: str) -> dict:
    """Model name and ISA flags of the first processor in a ``/proc/cpuinfo`` text."""
    model, flags = None, set()
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, _, val = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and model is None:
            model = val.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(val.split())
    return {"model": model, "flags": [f for f in ISA_FLAGS if f in flags]}  # fixed order


@lru_cache(maxsize=1)
def cpu_info() -> dict:
    """CPU model, ISA features, cores and torch's CPU dispatch level (cached per process)."""
    info = {"model": platform.processor() or None, "flags": []}
    p = Path("/proc/cpuinfo")
    if p.exists():
        try:
            info.update({k: v for k, v in parse_cpuinfo(p.read_text()).items() if v})
        except OSError:
            pass
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - older torch
        capability = None
    flags = info["flags"]
    return {
        "model": info["model"],
        "arch": platform.machine(),
        "isa": [ISA_FLAGS[f] for f in flags],
        "flags": flags,
        "avx2": "avx2" in flags,
        "avx512": "avx512f" in flags,
        "vnni": "avx512_vnni" in flags or "avx_vnni" in flags,
        "amx": "amx_int8" in flags or "amx_tile" in flags,
        "bf16": bool(set(flags) & set(BF16_FLAGS)),
        "torch_cpu_capability": capability,
        "cores": os.cpu_count(),
    }


def cpu_has_bf16(info: dict | None = None) -> bool:
    """The CPU reports AVX-512-BF16 or AMX-BF16 (``info``: a :func:`cpu_info` dict, default
    this machine's)."""
    flags = (cpu_info() if info is None else info).get("flags") or []
    return any(f in flags for f in BF16_FLAGS)


def gpu_info() -> dict | None:
    if not torch.cuda.is_available():
        return None
    i = torch.cuda.current_device()
    prop = torch.cuda.get_device_properties(i)
    return {"name": prop.name, "count": torch.cuda.device_count(),
            "memory_gb": round(prop.total_memory / 2**30, 1),
            "capability": f"{prop.major}.{prop.minor}", "cuda": torch.version.cuda,
            "bf16": bool(torch.cuda.is_bf16_supported())}


def machine_info(threads: int | None = None) -> dict:
    """Everything a speed figure depends on: CPU + ISA, threads, GPU, library versions."""
    import sys

    return {"cpu": cpu_info(), "threads": threads or torch.get_num_threads(),
            "gpu": gpu_info(), "torch": torch.__version__,
            "python": sys.version.split()[0], "platform": platform.platform()}


def machine_line(m: dict) -> str:
    """One line: ``Intel Xeon ... (x86_64; AVX2, AVX-512, AVX-512 VNNI, AMX-INT8), 2 cores,
    2 threads, torch 2.13.0+cpu`` (+ the GPU)."""
    cpu = m.get("cpu") or {}
    isa = [x for x in cpu.get("isa", []) if x in ("AVX2", "AVX-512", "AVX-512 VNNI", "AVX-VNNI",
                                                  "AMX-INT8", "AMX-BF16", "NEON", "SVE")]
    line = (f"{cpu.get('model') or 'unknown CPU'} ({cpu.get('arch')}; "
            f"{', '.join(isa) or 'no AVX2'}), {cpu.get('cores')} cores, "
            f"{m.get('threads')} threads, torch {m.get('torch')}")
    g = m.get("gpu")
    if g:
        line += f"; GPU {g['name']} ×{g['count']} (CUDA {g['cuda']})"
    return line
