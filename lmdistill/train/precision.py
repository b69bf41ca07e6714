"""Training precision: what ``train.mixed_precision`` resolves to, the accelerator made with it,
and on CPUs with bf16 arithmetic the start-up probe that times fp32 against bf16 training
steps of the run's own model and takes bf16 where it is clearly faster."""

from __future__ import annotations

import contextlib
import math
import time

import torch

from ..errors import ConfigError


def resolve_mixed_precision(mode: str = "auto", cpu: bool | None = None) -> str:
    """The precision an accelerator is created with. ``auto`` -> ``bf16`` on a CUDA GPU that
    supports it, else ``no``; on a CPU with bf16 arithmetic the :class:`Trainer` then times
    both (:func:`probe_cpu_precision`) and switches to bf16 where it is
    :data:`BF16_MIN_SPEEDUP`× faster. ``fp16`` needs CUDA."""
    cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    if mode not in ("auto", "no", "fp16", "bf16"):
        raise ConfigError(f"train.mixed_precision must be auto, no, fp16 or bf16, not '{mode}'")
    if mode == "auto":
        return "bf16" if not cpu and torch.cuda.is_bf16_supported() else "no"
    if mode == "fp16" and cpu:
        raise ConfigError("train.mixed_precision=fp16 needs a CUDA GPU; use bf16 or no on a CPU")
    return mode


# train.mixed_precision=auto on a bf16 CPU takes bf16 when a training step is this much faster
BF16_MIN_SPEEDUP = 1.3
# ... and an fp32 step takes at least this long: shorter steps gain next to nothing, and at
# a millisecond the timing of a busy machine is noise (a toy model measured 0.7x-3.6x)
BF16_MIN_STEP_S = 0.05


def choose_cpu_precision(fp32_s: float, bf16_s: float, min_speedup: float | None = None,
                         min_step_s: float | None = None) -> str:
    """The rule of ``auto`` on a bf16 CPU: ``"bf16"`` when a training step takes at most
    1/``min_speedup`` of the fp32 step's time (default :data:`BF16_MIN_SPEEDUP`) and the fp32
    step takes at least ``min_step_s`` (default :data:`BF16_MIN_STEP_S`), else ``"no"``
    (fp32). Missing or non-positive timings give fp32."""
    min_speedup = BF16_MIN_SPEEDUP if min_speedup is None else min_speedup
    min_step_s = BF16_MIN_STEP_S if min_step_s is None else min_step_s
    if fp32_s is None or bf16_s is None or not math.isfinite(fp32_s + bf16_s) \
            or fp32_s <= 0 or bf16_s <= 0 or fp32_s < min_step_s:
        return "no"
    return "bf16" if fp32_s / bf16_s >= min_speedup else "no"


@contextlib.contextmanager
def preserved_state(module: torch.nn.Module):
    """Run a block that trains ``module`` and leave no trace: every parameter and buffer
    value, every ``.grad``, every submodule's train/eval mode and the torch, Python and NumPy
    RNG streams are as they were afterwards (the tensors themselves are kept, so optimizers
    holding them are unaffected)."""
    import random

    import numpy as np

    tensors = [(t, t.detach().clone()) for t in
               list(module.parameters()) + list(module.buffers())]
    grads = [(p, None if p.grad is None else p.grad.detach().clone())
             for p in module.parameters()]
    modes = [(m, m.training) for m in module.modules()]
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state())
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        with torch.no_grad():
            for t, saved in tensors:
                t.copy_(saved)
        for p, g in grads:
            p.grad = g
        for m, mode in modes:
            m.training = mode
        torch.set_rng_state(rng[0])
        random.setstate(rng[1])
        np.random.set_state(rng[2])
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def probe_cpu_precision(objective: torch.nn.Module, batch: dict, lr: float = 1e-5,
                        max_grad_norm: float | None = 1.0, min_pairs: int = 2,
                        max_pairs: int = 5, budget_s: float = 10.0,
                        min_speedup: float | None = None,
                        min_step_s: float | None = None) -> dict:
    """Time training steps (forward, backward, gradient clipping, an AdamW step) of
    ``objective`` on ``batch`` in fp32 and under CPU bf16 autocast (what Accelerate does with
    ``mixed_precision=bf16``), and choose by :func:`choose_cpu_precision`.

    One warm-up step of each, then pairs of steps with the order alternating (fp32, bf16),
    (bf16, fp32), ... : at least ``min_pairs``, more while under ``budget_s`` seconds, at most
    ``max_pairs``; medians are compared. The steps use their own optimizer and
    :func:`preserved_state`: the objective's weights, gradients and modes and the RNG streams
    are untouched. Returns ``{"choice", "fp32_step_s", "bf16_step_s", "speedup",
    "pairs", "probe_s", "min_speedup", "min_step_s", "batch_shape"}`` (step times: medians,
    seconds)."""
    import statistics

    params = [p for p in objective.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the objective has no trainable parameters")
    t_start = time.perf_counter()

    def step(bf16: bool) -> float:
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = objective(batch)["loss"]
        loss.float().backward()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    times = {False: [], True: []}
    with preserved_state(objective):
        for p in params:
            p.grad = None
        objective.train()
        opt = torch.optim.AdamW(params, lr=lr)
        step(False)
        step(True)  # warm-up: allocations, oneDNN kernels
        pairs = 0
        while pairs < min_pairs or (pairs < max_pairs
                                    and time.perf_counter() - t_start < budget_s):
            for bf16 in ((False, True) if pairs % 2 == 0 else (True, False)):
                times[bf16].append(step(bf16))
            pairs += 1
        del opt
    fp32_s, bf16_s = statistics.median(times[False]), statistics.median(times[True])
    min_speedup = BF16_MIN_SPEEDUP if min_speedup is None else min_speedup
    min_step_s = BF16_MIN_STEP_S if min_step_s is None else min_step_s
    shape = next((list(v.shape) for k, v in batch.items() if k == "input_ids"), None)
    return {"choice": choose_cpu_precision(fp32_s, bf16_s, min_speedup, min_step_s),
            "fp32_step_s": round(fp32_s, 4), "bf16_step_s": round(bf16_s, 4),
            "speedup": round(fp32_s / bf16_s, 3), "pairs": pairs,
            "probe_s": round(time.perf_counter() - t_start, 2), "min_speedup": min_speedup,
            "min_step_s": min_step_s, "batch_shape": shape}


def make_accelerator(mixed_precision: str = "no"):
    """CPU unless CUDA is present. ``cpu=True`` matters under ``torchrun``/``accelerate launch``
    on a CPU machine: without it both processes would run full unsharded copies.

    ``mixed_precision`` (``auto | no | fp16 | bf16``, see :func:`resolve_mixed_precision`)
    reaches Accelerate, which autocasts the objective's forward pass (and scales fp16 losses).
    Accelerate keeps one process-wide state; it is reset when the precision changes so that
    several runs with different settings can share a process (tests, notebooks)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    cpu = not torch.cuda.is_available()
    mp = resolve_mixed_precision(mixed_precision, cpu)
    if AcceleratorState._shared_state.get("_mixed_precision", mp) != mp:
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=cpu, mixed_precision=mp)


def _precision_name(mp: str) -> str:
    return "fp32" if mp == "no" else mp


def _precision_message(rec: dict) -> str:
    """One log line: ``train.mixed_precision=auto: bf16 (a training step on a 32x128 batch:
    fp32 7.01 s, bf16 3.90 s, 1.80x >= 1.3x; 2 pairs, probe 33 s)``."""
    head = f"train.mixed_precision=auto: {_precision_name(rec['choice'])}"
    if "speedup" not in rec:
        return f"{head} ({rec['reason']})"
    shape = "x".join(str(n) for n in rec.get("batch_shape") or []) or "?"
    short = rec["fp32_step_s"] < rec.get("min_step_s", 0)
    cmp = ">=" if rec["choice"] == "bf16" or (short and rec["speedup"] >= rec["min_speedup"]) \
        else "<"
    tail = f"; fp32 steps under {rec['min_step_s']} s stay fp32" if short else ""
    return (f"{head} (a training step on a {shape} batch: fp32 {rec['fp32_step_s']:.3g} s, "
            f"bf16 {rec['bf16_step_s']:.3g} s, {rec['speedup']:.2f}x {cmp} "
            f"{rec['min_speedup']}x; {rec['pairs']} pairs timed, probe {rec['probe_s']:.0f} s"
            f"{tail})")
