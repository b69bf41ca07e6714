"""Per-operation costs for AdaBERT's efficiency loss.

``latency`` (default): each candidate op is timed on this machine (forward pass, inference
mode, a [batch, length, hidden] input, fastest of ``reps`` after warm-up), so the search trades
accuracy against speed where the model will run; the figures are cached per machine (CPU
model, ISA, threads, torch) and shape; the threads are the training's (``train.num_threads``). ``params`` and ``flops`` are analytic alternatives.
Costs are normalised to [0, 1] by the costliest op; ``zero`` costs 0.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from ...errors import ConfigError
from ...models.adabert import make_op

KINDS = ("latency", "params", "flops")


def _analytic(name: str, dim: int, length: int, kind: str) -> float:
    if name == "zero":
        return 0.0
    if "conv" in name:
        k = int(name[-1])
        params = k * dim * dim + dim + 2 * dim  # conv weight + bias + layer norm
        return float(params) if kind == "params" else float(2 * k * dim * dim * length)
    if kind == "params":
        return 0.0
    return float(dim * length * (3 if "pool" in name else 1))  # comparisons / adds / copies


def measure_latency(ops, dim: int, batch: int = 32, length: int = 64, reps: int = 30,
                    seed: int = 0) -> dict[str, float]:
    """Seconds per forward pass of each op (its fastest of ``reps`` interleaved rounds, so
    drifts hit all ops alike)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, dim, generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[: batch // 2, length * 3 // 4:] = 0  # some padding, as in real batches
    torch.manual_seed(seed)
    mods = {o: make_op(o, dim).eval() for o in ops}
    times: dict[str, list[float]] = {o: [] for o in ops}
    with torch.inference_mode():
        for _ in range(3):
            for o, m in mods.items():
                m(x, mask)
        for _ in range(reps):
            for o, m in mods.items():
                t = time.perf_counter()
                m(x, mask)
                times[o].append(time.perf_counter() - t)
    # the fastest round: the least disturbed by other work on the machine (the median moves
    # with background load; the minimum is what the op costs on an idle core)
    return {o: (0.0 if o == "zero" else min(v)) for o, v in times.items()}


def cache_dir() -> Path:
    from ...cache import cache_root

    return cache_root() / "adabert-costs"


def op_costs(ops, dim: int, kind: str = "latency", batch: int = 32, length: int = 64,
             reps: int = 30, use_cache: bool = True) -> dict:
    """``{"kind", "raw": {op: cost}, "normalised": {op: cost in [0, 1]}, "machine", "shape"}``."""
    from ...hardware import machine_info, machine_line

    if kind not in KINDS:
        raise ConfigError(f"adabert.cost must be one of {', '.join(KINDS)}, not '{kind}'")
    ops = list(ops)
    machine = machine_line(machine_info())
    if kind == "latency":
        key = hashlib.sha256(json.dumps([machine, torch.__version__, torch.get_num_threads(),
                                         ops, dim, batch, length, reps]).encode()).hexdigest()
        path = cache_dir() / f"{key[:20]}.json"
        if use_cache and path.exists():
            return json.loads(path.read_text())
        raw = measure_latency(ops, dim, batch, length, reps)
    else:
        raw = {o: _analytic(o, dim, length, kind) for o in ops}
    top = max(raw.values()) or 1.0
    rec = {"kind": kind, "raw": raw, "normalised": {o: v / top for o, v in raw.items()},
           "machine": machine, "threads": torch.get_num_threads(),
           "shape": {"batch": batch, "length": length, "hidden": dim}}
    if kind == "latency" and use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=1))
        tmp.rename(path)
    return rec
