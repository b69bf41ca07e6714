"""Quantized and ONNX models load, evaluate and bench through the same API as any model."""

from __future__ import annotations

import json

import pytest
import torch

from lmdistill import api
from lmdistill import config as C
from lmdistill.bench import bench, table
from lmdistill.compress import onnx as O
from lmdistill.compress import quantize as Q
from lmdistill.errors import ConfigError, ModelError
from lmdistill.models import hub


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft")
    api.finetune(C.build(C.FinetuneConfig, overrides={
        "output_dir": str(out), "model.name": str(tiny_bert), "data.task": "sst2",
        "data.limit": 256, "data.eval_limit": 128, "data.max_length": 48,
        "train.batch_size": 16, "train.epochs": 2, "train.lr": 1e-3, "train.progress": False}))
    return out / "model"


@pytest.fixture(scope="module")
def onnx_dirs(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    fp32 = O.export_onnx(trained, root / "fp32")
    int8 = O.export_onnx(trained, root / "int8", int8=True)
    return root / "fp32", root / "int8", fp32, int8


def _logits(ref, texts):
    tok = hub.load_tokenizer(str(ref))
    m = hub.load_classifier(str(ref)).eval()
    x = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return m(**x).logits


TEXTS = ["a moving , funny film", "dull", "the worst thing i have seen this year , by far"]


def test_onnx_parity_and_dynamic_shapes(trained, onnx_dirs):
    fp32_dir, _, info, _ = onnx_dirs
    assert info["max_abs_diff"] < 1e-4
    saved = json.loads((fp32_dir / O.INFO_FILE).read_text())
    assert saved["params"] == info["params"] > 0
    # other batch size and lengths than at export time
    torch.testing.assert_close(_logits(fp32_dir, TEXTS), _logits(trained, TEXTS),
                               atol=1e-4, rtol=0)
    torch.testing.assert_close(_logits(fp32_dir, TEXTS[:1]), _logits(trained, TEXTS[:1]),
                               atol=1e-4, rtol=0)


def test_onnx_int8_is_smaller_and_close(trained, onnx_dirs):
    fp32_dir, int8_dir, fp32, int8 = onnx_dirs
    assert int8["int8"] and int8["size_mb"] < fp32["size_mb"]
    assert int8["max_abs_diff"] < 0.1


def test_quantized_and_onnx_evaluate_like_any_model(trained, onnx_dirs, tmp_path):
    fp32_dir, int8_dir, _, _ = onnx_dirs
    q = tmp_path / "q"
    info = Q.quantize(trained, q)
    assert Q.method_of(q) == info["method"] == "torchao-int8"
    base = api.evaluate(str(trained), "sst2", "dev", limit=128, max_length=48, progress=False)
    for ref in (q, fp32_dir, int8_dir):
        ev = api.evaluate(str(ref), "sst2", "dev", limit=128, max_length=48, progress=False)
        assert ev["examples"] == 128
        assert abs(ev["accuracy"] - base["accuracy"]) <= 0.05, ref
    ev = api.evaluate(str(fp32_dir), "sst2", "dev", limit=128, max_length=48, progress=False)
    assert ev["accuracy"] == base["accuracy"]  # FP32 ONNX: same predictions
    with pytest.raises(ModelError, match="labels"):
        api.evaluate(str(fp32_dir), "clinc150", "dev", limit=8)


def test_quantize_bad_method(trained, tmp_path):
    with pytest.raises(ConfigError, match="unknown quantization method"):
        Q.quantize(trained, tmp_path / "x", "int3")


def test_bench_schema_and_ratios(trained, onnx_dirs, tmp_path):
    fp32_dir, int8_dir, _, _ = onnx_dirs
    res = bench({"teacher": str(trained), "onnx": str(fp32_dir), "onnx8": str(int8_dir)},
                "sst2", "dev", (1, 4), repeats=5, n_batches=2, threads=1)
    assert res["threads"] == 1 and res["batch_sizes"] == [1, 4]
    rows = {r["label"]: r for r in res["models"]}
    assert [r["kind"] for r in res["models"]] == ["torch-fp32", "onnx-fp32", "onnx-int8"]
    t = rows["teacher"]
    assert t["batch1"]["speedup"] == 1.0 and t["compression"] == 1.0
    assert t["flops_per_example"] > 0 and rows["onnx"]["flops_per_example"] is None
    for r in res["models"]:
        for bs in (1, 4):
            m = r[f"batch{bs}"]
            assert m["timed_runs"] == 5 * 2 and m["p50_ms"] <= m["p90_ms"]
            assert m["speedup"] == pytest.approx(t[f"batch{bs}"]["p50_ms"] / m["p50_ms"],
                                                 rel=0.01)
            assert m["throughput"] == pytest.approx(bs / (m["p50_ms"] / 1e3), rel=0.01)
        assert r["params"] == t["params"]  # same network, other runtimes
        assert r["peak_mem_mb"] is not None and r["peak_mem_mb"] >= 0
    assert rows["onnx8"]["size_mb"] < rows["onnx"]["size_mb"]
    assert t["peak_mem_mb"] > 0  # at least the weights become resident
    md = table(res)
    assert md.count("\n") == 4 and "| onnx8 |" in md
