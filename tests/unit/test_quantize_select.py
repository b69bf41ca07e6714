"""The choice of `quantize --method auto` on injected timings and accuracies."""

from __future__ import annotations

import pytest

from lmdistill.compress.quantize import QuantizationRefused, select


def m(ms, acc=None, error=None):
    return {"latency_ms": ms, "metric": acc, "error": error}


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
    with pytest.raises(QuantizationRefused, match="no INT8/BF16 backend is faster than FP32"):
        select(measured)
    sel = select(measured, force=True)  # the fastest is written, flagged
    assert sel["choice"] == "torch-dynamic-int8" and sel["slower_than_fp32"]
    assert sel["reasons"]["onnx-int8"].startswith("failed")


def test_accuracy_losses_refuse_too_and_missing_accuracy_is_not_a_pass():
    with pytest.raises(QuantizationRefused, match="loses 5.00 points"):
        select({"fp32": m(100, 0.9), "a": m(10, 0.85)})
    with pytest.raises(QuantizationRefused, match="accuracy not measured"):
        select({"fp32": m(100, 0.9), "a": m(10, None)})


def test_without_a_task_only_speed_decides():
    sel = select({"fp32": m(100), "a": m(80), "b": m(30)})
    assert sel["choice"] == "b"
