"""``quantize``'s decisions as pure functions of the measurements: the accuracy gates (agreement
with FP32's predictions), the speed gate (faster than FP32 beyond the run's timing noise) and
the choice among the backends that pass them (see :mod:`lmdistill.compress.quantize`)."""

from __future__ import annotations

import torch

from ..errors import ConfigError


class QuantizationRefused(ConfigError):
    """No INT8 backend is faster than the FP32 model on this machine (and no ``force``)."""


#: Least fraction of the timing sentences on which a backend must predict FP32's label.
#: Measured on a MiniLM-L6 fine-tuned on SST-2 (78.3% dev accuracy, so many near-ties), all 864
#: dev sentences: bf16 99.9%, torchao-int8 99.4%, onnx-int8 98.1% (dev accuracy +0.1 to +0.5
#: points), torch-dynamic-int8 (per-tensor) 95.6% (+0.3 points there; the same backend lost 3.9
#: Pearson points on STS-B); a corrupted backend agrees on < 50%. The check sees only the 64-96
#: timing sentences: at 0.95 a 98%-agreeing backend passes 96% of the time (binomial), at 0.97
#: only 66-73%, so 0.95 is the default: it refuses more than 1 flip in 20.
MIN_AGREEMENT = 0.95
#: Regression: most |prediction − FP32's| on the timing sentences, as a fraction of the spread
#: (standard deviation) of FP32's own predictions there. Measured on a MiniLM-L6 fine-tuned on
#: STS-B (Pearson 0.593 on 480 dev pairs), on the 64 built-in, 96 dev and 480 dev sentences:
#: bf16 0.03-0.08 (Pearson +0.1 points), torchao-int8 0.16-0.37 (−0.3), onnx-int8 0.41-0.52
#: (−0.5), torch-dynamic-int8 0.99-1.58 (−3.9 points: refused).
MAX_REGRESSION_DIFF = 0.75
#: One-sided confidence of "faster than FP32" (bootstrap over the interleaved timing rounds).
SPEED_LEVEL = 0.95


def compare_predictions(ref, got) -> dict:
    """How closely ``got`` (a backend's outputs on some sentences) follows ``ref`` (FP32's on
    the same sentences), both ``[n, labels]``. Classification: ``agreement`` (fraction of
    sentences with the same argmax), ``flipped`` (how many differ) and ``max_abs_logit_diff``;
    regression (one output): ``max_abs_diff`` of the predictions and ``relative_diff`` (that
    over the standard deviation of FP32's predictions). Pure function."""
    ref, got = torch.as_tensor(ref).float(), torch.as_tensor(got).float()
    if ref.dim() == 1:
        ref, got = ref[:, None], got.reshape(-1, 1)
    if ref.shape != got.shape:
        raise ValueError(f"predictions of different shapes: {tuple(ref.shape)} vs "
                         f"{tuple(got.shape)}")
    n = ref.shape[0]
    diff = (ref - got).abs()
    if ref.shape[-1] == 1:
        spread = float(ref.std()) if n > 1 else 0.0
        mad = float(diff.max())
        return {"kind": "regression", "n": n, "max_abs_diff": round(mad, 6),
                "fp32_std": round(spread, 6),
                "relative_diff": round(mad / spread, 6) if spread > 0 else float("inf")}
    same = ref.argmax(-1) == got.argmax(-1)
    return {"kind": "classification", "n": n, "agreement": round(float(same.float().mean()), 6),
            "flipped": int((~same).sum()), "max_abs_logit_diff": round(float(diff.max()), 6)}


def accuracy_gate(cmp: dict | None, min_agreement: float = MIN_AGREEMENT,
                  max_regression_diff: float = MAX_REGRESSION_DIFF) -> str | None:
    """None if a backend's :func:`compare_predictions` record passes, else why not."""
    if cmp is None:
        return "agreement with FP32 not measured"
    if cmp["kind"] == "regression":
        if not cmp["relative_diff"] <= max_regression_diff + 1e-12:
            return (f"disagrees with FP32: max |prediction difference| {cmp['max_abs_diff']:.4g}"
                    f" = {cmp['relative_diff']:.3g}× the spread of FP32's predictions "
                    f"(> {max_regression_diff}) on {cmp['n']} timing sentences")
        return None
    if cmp["agreement"] < min_agreement - 1e-12:
        return (f"disagrees with FP32: same prediction on {cmp['agreement']:.1%} of "
                f"{cmp['n']} timing sentences ({cmp['flipped']} flipped; < {min_agreement:.0%}),"
                f" max |logit difference| {cmp['max_abs_logit_diff']:.3g}")
    return None


def _rounds(t: dict) -> list[float]:
    return t.get("rounds_ms") or ([t["latency_ms"]] if t.get("latency_ms") is not None else [])


def speed_check(base: dict, m: dict, level: float = SPEED_LEVEL) -> dict:
    """Is ``m`` faster than ``base`` by more than the timing noise? Both are measured entries
    (see :func:`select`). At every timed batch size (``timing["batch<bs>"]["rounds_ms"]``, the
    per-round latencies of the interleaved rounds) the speedup and its bootstrap bounds
    (:func:`lmdistill.bench.speedup_interval`); ``faster`` only when every lower bound
    exceeds 1. Without per-round samples only the bare latencies are compared, which gives no
    noise estimate and so never counts as faster. Pure function."""
    from ..bench import speedup_interval

    by: dict[str, dict] = {}
    for key, bt in (base.get("timing") or {}).items():
        ct = (m.get("timing") or {}).get(key)
        if ct is None or not _rounds(bt) or not _rounds(ct):
            continue
        by[key] = speedup_interval(_rounds(bt), _rounds(ct), level)
    if not by and base.get("latency_ms") and m.get("latency_ms"):
        by["latency"] = speedup_interval([base["latency_ms"]], [m["latency_ms"]], level)
    faster = bool(by) and all(v["low"] is not None and v["low"] > 1 for v in by.values())
    return {"faster": faster, "level": level, "by_batch": by}


def _speed_reason(sp: dict) -> str:
    by = sp["by_batch"]
    if not by:
        return "not timed"
    key = min(by, key=lambda k: by[k]["speedup"])
    w = by[key]
    where = "" if key == "latency" else f" at {key.replace('batch', 'batch ')}"
    if w["speedup"] < 1:
        return f"slower than FP32{where} ({w['speedup']:.2f}×)"
    key = min(by, key=lambda k: -1 if by[k]["low"] is None else by[k]["low"])
    w = by[key]
    where = "" if key == "latency" else f" at {key.replace('batch', 'batch ')}"
    if w["low"] is None:
        return (f"not reliably faster than FP32{where}: {w['speedup']:.2f}× from fewer than 3 "
                "timing rounds, no noise estimate")
    return (f"not reliably faster than FP32{where}: {w['speedup']:.2f}× is within the timing "
            f"noise (lower bound {w['low']:.2f}×)")


# ------------------------------------------------------------------ selection
def select(measured: dict[str, dict], tolerance: float = 1.0, force: bool = False,
           base: str = "fp32", min_agreement: float = MIN_AGREEMENT,
           max_regression_diff: float = MAX_REGRESSION_DIFF,
           level: float = SPEED_LEVEL) -> dict:
    """Choose among measured variants. ``measured[name]`` has ``latency_ms`` (p50 at the
    selection batch size; None if it failed), ``timing`` (``{"batch<bs>": {"rounds_ms":
    [...]}}``, the per-round latencies at each timed batch size), ``agreement`` (its
    :func:`compare_predictions` against FP32 on the timing sentences), optionally ``metric``
    (the task metric, higher better; None if not evaluated) and ``error``. ``base`` names the
    FP32 entry.

    Keeps the variants that ran, agree with FP32 (:func:`accuracy_gate`, always, ``force`` or
    not), are faster than FP32 by more than the timing noise at every timed batch size
    (:func:`speed_check`; unless ``force``) and lose at most ``tolerance`` points (100 × metric
    difference) against FP32 when a metric was measured; returns ``{"choice", "reasons",
    "slower_than_fp32", "speed"}``; raises :class:`QuantizationRefused` when none is left.
    """
    b = measured[base]
    reasons: dict[str, str] = {}
    speed: dict[str, dict] = {}
    ok = []
    for name, m in measured.items():
        if name == base:
            continue
        if m.get("error"):
            reasons[name] = f"failed: {m['error']}"
            continue
        sp = speed[name] = speed_check(b, m, level)
        cmp = m.get("agreement")
        bad = accuracy_gate(cmp, min_agreement, max_regression_diff) if cmp else None
        if bad:
            reasons[name] = bad
            continue
        if not sp["faster"] and not force:
            reasons[name] = _speed_reason(sp)
            continue
        if cmp is None:
            reasons[name] = accuracy_gate(None)
            continue
        if b.get("metric") is not None:
            if m.get("metric") is None:
                reasons[name] = "accuracy not measured"
                continue
            drop = 100 * (b["metric"] - m["metric"])
            if drop > tolerance + 1e-9:  # 100·(0.90 − 0.89) is 1.0000000000000009
                reasons[name] = f"loses {drop:.2f} points (> {tolerance})"
                continue
        shown = ", ".join(f"{v['speedup']:.2f}× [{v['low']}, {v['high']}] at {k}"
                          for k, v in sp["by_batch"].items())
        reasons[name] = (f"eligible: {shown}" if sp["faster"] else
                         f"eligible only because forced: {_speed_reason(sp)}")
        ok.append(name)
    if not ok:
        detail = "; ".join(f"{k}: {v}" for k, v in reasons.items())
        raise QuantizationRefused(
            f"no INT8/BF16 backend is reliably faster than FP32 while agreeing with it "
            f"(and within {tolerance} points) on this machine ({detail}); keep the FP32 "
            "model, or pass --force to write the fastest that agrees anyway")
    choice = min(ok, key=lambda n: measured[n]["latency_ms"])
    return {"choice": choice, "reasons": reasons, "speed": speed,
            "slower_than_fp32": not speed[choice]["faster"]}


# ------------------------------------------------------------------ the command
