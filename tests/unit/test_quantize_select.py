"""The choice of `quantize --method auto` on injected timings, agreements and accuracies."""

from __future__ import annotations

import pytest
import torch

from lmdistill.bench import speedup_interval
from lmdistill.compress.quantize import (MAX_REGRESSION_DIFF, MIN_AGREEMENT, QuantizationRefused,
                                         accuracy_gate, compare_predictions, select,
                                         speed_check)

AGREES = {"kind": "classification", "n": 96, "agreement": 1.0, "flipped": 0,
          "max_abs_logit_diff": 0.01}


def rounds(ms, spread=0.01, n=5):
    """n per-round latencies around ``ms`` (± ``spread`` × ms), deterministic."""
    return [ms * (1 + spread * d) for d in (-1, -0.5, 0, 0.5, 1)[:n]]


def m(ms, acc=None, error=None, agreement=AGREES, spread=0.01, b1=None):
    """A measured entry: timed at batch 32 (``ms``) and batch 1 (``b1``, default ms/20)."""
    if error:
        return {"latency_ms": None, "metric": acc, "error": error}
    b1 = ms / 20 if b1 is None else b1
    return {"latency_ms": ms, "metric": acc, "agreement": agreement,
            "timing": {"batch32": {"latency_ms": ms, "rounds_ms": rounds(ms, spread)},
                       "batch1": {"latency_ms": b1, "rounds_ms": rounds(b1, spread)}}}


def test_picks_the_fastest_within_tolerance():
    measured = {"fp32": m(100, 0.900), "torch-dynamic-int8": m(60, 0.895),
                "onnx-int8": m(40, 0.880),       # fastest, but loses 2 points
                "torchao-int8": m(4000, 0.900)}  # the AVX2-only machine's torchao
    sel = select(measured, tolerance=1.0)
    assert sel["choice"] == "torch-dynamic-int8" and not sel["slower_than_fp32"]
    assert "loses 2.00 points" in sel["reasons"]["onnx-int8"]
    assert "slower than FP32" in sel["reasons"]["torchao-int8"]
    # a looser tolerance admits the faster one
    assert select(measured, tolerance=2.5)["choice"] == "onnx-int8"


def test_tolerance_boundary_and_gains():
    measured = {"fp32": m(100, 0.90), "a": m(50, 0.89), "b": m(70, 0.93)}
    assert select(measured, tolerance=1.0)["choice"] == "a"  # exactly 1 point: kept
    assert select(measured, tolerance=0.99)["choice"] == "b"


def test_refuses_when_nothing_is_faster_than_fp32():
    measured = {"fp32": m(100, 0.9), "torchao-int8": m(3720, 0.9),
                "torch-dynamic-int8": m(100, 0.9), "onnx-int8": m(None, error="no onnxruntime")}
    with pytest.raises(QuantizationRefused, match="no INT8/BF16 backend is reliably faster"):
        select(measured)
    sel = select(measured, force=True)  # the fastest is written, flagged
    assert sel["choice"] == "torch-dynamic-int8" and sel["slower_than_fp32"]
    assert sel["reasons"]["onnx-int8"].startswith("failed")
    assert "forced" in sel["reasons"]["torch-dynamic-int8"]


def test_accuracy_losses_refuse_too_and_missing_accuracy_is_not_a_pass():
    with pytest.raises(QuantizationRefused, match="loses 5.00 points"):
        select({"fp32": m(100, 0.9), "a": m(10, 0.85)})
    with pytest.raises(QuantizationRefused, match="accuracy not measured"):
        select({"fp32": m(100, 0.9), "a": m(10, None)})


def test_without_a_task_agreement_and_speed_decide():
    sel = select({"fp32": m(100), "a": m(80), "b": m(30)})
    assert sel["choice"] == "b"


# ------------------------------------------------------------------ the accuracy gate
def test_a_backend_that_disagrees_with_fp32_is_refused_without_a_task():
    """Issue 26 defect 5: without --task nothing checked accuracy, so the fastest backend was
    chosen even when it changed the predictions."""
    flipped = compare_predictions(torch.tensor([[2.0, -1.0]] * 90 + [[-1.0, 2.0]] * 10),
                                  torch.tensor([[-1.0, 2.0]] * 90 + [[-1.0, 2.0]] * 10))
    assert flipped["agreement"] == pytest.approx(0.10) and flipped["flipped"] == 90
    measured = {"fp32": m(100), "fast-but-wrong": m(20, agreement=flipped), "ok": m(50)}
    sel = select(measured)
    assert sel["choice"] == "ok"
    assert sel["reasons"]["fast-but-wrong"].startswith("disagrees with FP32")
    with pytest.raises(QuantizationRefused, match="disagrees with FP32"):
        select({"fp32": m(100), "fast-but-wrong": m(20, agreement=flipped)})
    with pytest.raises(QuantizationRefused, match="disagrees"):  # force lifts only speed
        select({"fp32": m(100), "fast-but-wrong": m(20, agreement=flipped)}, force=True)
    # no agreement measured is no pass either
    with pytest.raises(QuantizationRefused, match="agreement with FP32 not measured"):
        select({"fp32": m(100), "a": m(20, agreement=None)})


def test_agreement_threshold_and_logit_difference():
    ref = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
    got = ref.clone()
    order = ref.argmax(-1)
    for i in range(5):  # flip 5 of 100: agreement 0.95, the boundary, passes
        got[i, (order[i] + 1) % 3] = ref[i].max() + 1
    c = compare_predictions(ref, got)
    assert c["agreement"] == pytest.approx(0.95) and c["flipped"] == 5
    assert c["max_abs_logit_diff"] == pytest.approx(float((ref - got).abs().max()), rel=1e-5)
    assert accuracy_gate(c) is None and MIN_AGREEMENT == 0.95
    got[5, (order[5] + 1) % 3] = ref[5].max() + 1  # a 6th: 0.94 < 0.95
    assert "94.0% of 100" in accuracy_gate(compare_predictions(ref, got))
    assert accuracy_gate(compare_predictions(ref, got), min_agreement=0.9) is None
    assert compare_predictions(ref, ref.to(torch.bfloat16))["agreement"] >= 0.95


def test_regression_gate_is_the_max_abs_difference():
    ref = torch.linspace(0, 5, 96)[:, None]  # std ≈ 1.47
    close = compare_predictions(ref, ref + 0.05)
    assert close["kind"] == "regression" and close["max_abs_diff"] == pytest.approx(0.05, abs=1e-5)
    assert accuracy_gate(close) is None and MAX_REGRESSION_DIFF == 0.75
    off = ref.clone()
    off[7] += 1.5  # one prediction off by about one standard deviation of FP32's
    bad = accuracy_gate(compare_predictions(ref, off))
    assert bad and bad.startswith("disagrees with FP32: max |prediction difference| 1.5")
    with pytest.raises(QuantizationRefused, match="disagrees"):
        select({"fp32": m(100), "a": m(20, agreement=compare_predictions(ref, off))})
    assert accuracy_gate(compare_predictions(ref, off), max_regression_diff=1.1) is None


# ------------------------------------------------------------------ the speed gate
def test_speedup_interval_bounds_the_ratio_of_medians():
    base = [100, 102, 98, 101, 99]
    same = speedup_interval(base, [97, 99, 101, 98, 100])
    assert same["speedup"] == pytest.approx(100 / 99, rel=1e-3)  # a bare median says faster
    assert same["low"] < 1 < same["high"]  # but it is within the noise
    fast = speedup_interval(base, [60, 61, 59, 62, 60])
    assert 1 < fast["low"] <= fast["speedup"] <= fast["high"]
    assert speedup_interval(base, [97, 99, 101, 98, 100]) == same  # deterministic
    assert speedup_interval([100], [50])["low"] is None  # one round: no noise estimate


def test_timings_within_noise_are_not_faster():
    """Issue 26 defect 5: a bare median comparison at one batch size called a backend faster
    on 1% that the rounds' own spread (±10%) cannot resolve."""
    base = {"latency_ms": 100, "timing": {
        "batch32": {"latency_ms": 100, "rounds_ms": [100, 112, 91, 108, 95]},
        "batch1": {"latency_ms": 5, "rounds_ms": [5, 5.5, 4.6, 5.4, 4.8]}}}
    noisy = {"latency_ms": 99, "agreement": AGREES, "timing": {
        "batch32": {"latency_ms": 99, "rounds_ms": [99, 110, 92, 106, 90]},
        "batch1": {"latency_ms": 4.9, "rounds_ms": [4.9, 5.3, 4.5, 5.5, 4.7]}}}
    sc = speed_check(base, noisy)
    assert not sc["faster"] and sc["by_batch"]["batch32"]["speedup"] > 1
    with pytest.raises(QuantizationRefused, match="within the timing noise"):
        select({"fp32": base, "noisy": noisy})
    assert select({"fp32": base, "noisy": noisy}, force=True)["slower_than_fp32"]
    # the same gain with tight rounds is real
    tight = {"latency_ms": 99, "agreement": AGREES, "timing": {
        "batch32": {"latency_ms": 90, "rounds_ms": [90, 90.5, 89.8, 90.2, 90.1]},
        "batch1": {"latency_ms": 4, "rounds_ms": [4, 4.1, 3.9, 4.0, 4.05]}}}
    assert speed_check(base, tight)["faster"]


def test_faster_must_hold_at_every_timed_batch_size():
    fast32_slow1 = m(50, b1=10)  # 2× at batch 32, 0.5× at batch 1 (FP32: 5 ms)
    sc = speed_check(m(100), fast32_slow1)
    assert sc["by_batch"]["batch32"]["low"] > 1 and sc["by_batch"]["batch1"]["high"] < 1
    assert not sc["faster"]
    with pytest.raises(QuantizationRefused, match="slower than FP32 at batch 1"):
        select({"fp32": m(100), "a": fast32_slow1})


def test_bare_latencies_without_rounds_never_count_as_faster():
    sc = speed_check({"latency_ms": 100}, {"latency_ms": 50})
    assert not sc["faster"] and sc["by_batch"]["latency"]["low"] is None
