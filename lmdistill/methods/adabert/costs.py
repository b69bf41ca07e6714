"""Per-operation costs for AdaBERT's efficiency loss.

``latency`` (default): each candidate op is timed on this machine (forward pass, inference
mode, a [batch, length, hidden] input, fastest of ``reps`` interleaved rounds after warm-up) at
a fixed thread count (``LATENCY_THREADS``, whatever the training uses), so one machine gives
one cost table; the spread of the rounds is recorded as the table's noise. The table is cached
per machine (CPU model, ISA, torch) and shape, and every search stores the one it used.
``params``, ``flops`` and ``size+flops`` (the paper's: the mean of the size share and the FLOPs
share) are analytic. Costs are normalised as the paper does, relative to the whole search
space: each op's share of the total over all ops (they sum to 1); ``zero`` costs 0.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from ...errors import ConfigError
from ...models.adabert import make_op

KINDS = ("latency", "params", "flops", "size+flops")
#: threads the op latencies are timed with (one table per machine, not per training setting)
LATENCY_THREADS = 1


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
                    seed: int = 0, threads: int = LATENCY_THREADS
                    ) -> tuple[dict[str, float], dict[str, float]]:
    """``(seconds, noise)`` per op: the fastest of ``reps`` interleaved rounds (drifts hit all
    ops alike), and the rounds' interquartile range relative to their median, at ``threads``
    threads (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _time_ops(ops, dim, batch, length, reps, seed)
    finally:
        torch.set_num_threads(before)


def _time_ops(ops, dim, batch, length, reps, seed):
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
    import statistics

    def spread(v):
        q = statistics.quantiles(v, n=4)
        return (q[2] - q[0]) / max(statistics.median(v), 1e-12)

    return ({o: (0.0 if o == "zero" else min(v)) for o, v in times.items()},
            {o: (0.0 if o == "zero" else round(spread(v), 4)) for o, v in times.items()})


def cache_dir() -> Path:
    from ...cache import cache_root

    return cache_root() / "adabert-costs"


def op_costs(ops, dim: int, kind: str = "latency", batch: int = 32, length: int = 64,
             reps: int = 30, use_cache: bool = True) -> dict:
    """``{"kind", "raw": {op: cost}, "normalised": {op: share of the total}, "machine",
    "threads", "shape"}`` (+ ``"noise"`` per op for latency)."""
    from ...hardware import machine_info, machine_line

    if kind not in KINDS:
        raise ConfigError(f"adabert.cost must be one of {', '.join(KINDS)}, not '{kind}'")
    ops = list(ops)
    machine = machine_line(machine_info())
    noise = None
    if kind == "latency":
        key = hashlib.sha256(json.dumps([machine, torch.__version__, LATENCY_THREADS, ops, dim,
                                         batch, length, reps, 2]).encode()).hexdigest()
        path = cache_dir() / f"{key[:20]}.json"
        if use_cache and path.exists():
            return json.loads(path.read_text())
        raw, noise = measure_latency(ops, dim, batch, length, reps)
    elif kind == "size+flops":
        raw = {o: (_share(ops, dim, length, "params", o) + _share(ops, dim, length, "flops", o))
               / 2 for o in ops}
    else:
        raw = {o: _analytic(o, dim, length, kind) for o in ops}
    total = sum(raw.values()) or 1.0
    rec = {"kind": kind, "raw": raw, "normalised": {o: v / total for o, v in raw.items()},
           "machine": machine,
           "threads": LATENCY_THREADS if kind == "latency" else None,
           "shape": {"batch": batch, "length": length, "hidden": dim}}
    if noise is not None:
        rec["noise"] = noise
    if kind == "latency" and use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=1))
        tmp.rename(path)
    return rec


def _share(ops, dim: int, length: int, kind: str, op: str) -> float:
    """``op``'s share of the analytic ``kind`` cost summed over all ``ops``."""
    total = sum(_analytic(o, dim, length, kind) for o in ops) or 1.0
    return _analytic(op, dim, length, kind) / total
