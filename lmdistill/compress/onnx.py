"""ONNX export of any saved classifier (teacher or student), a parity check against PyTorch,
optional ONNX Runtime dynamic INT8 quantization, and a loader that makes an ONNX folder usable
wherever an HF model is (``evaluate``, ``bench``).

An exported folder holds ``model.onnx`` (single file), ``config.json``, the tokenizer and
``onnx_export.json`` (parity figures, opset, quantization). Inputs ``input_ids``,
``attention_mask``, ``token_type_ids`` (when the model takes them) with dynamic batch and
sequence axes; output ``logits``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import ModelError
from ..models.runtimes import INFO_FILE, ONNX_FILE, OnnxClassifier, is_onnx_dir  # noqa: F401

PARITY_SENTENCES = [
    ("a gripping , beautifully acted film .", None),
    ("the plot goes nowhere and the jokes fall flat , which is a shame given the cast .", None),
    ("ok", None),
]


class _LogitsOnly(torch.nn.Module):
    def __init__(self, model, names):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        x = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            x["token_type_ids"] = token_type_ids
        return self.model(**x).logits


def export_onnx(model_dir: str | Path, out_dir: str | Path, int8: bool = False,
                opset: int = 18, atol: float = 1e-4) -> dict:
    """Export ``model_dir`` to ``out_dir``; fail loudly if ONNX and PyTorch differ by more
    than ``atol`` on real sentences of other lengths than the export example."""
    from ..models import hub

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    tok = hub.load_tokenizer(str(model_dir))
    model = hub.load_classifier(str(model_dir)).eval()
    if isinstance(model, OnnxClassifier):
        raise ModelError(f"{model_dir} is already an ONNX model")
    x = tok(["an example sentence for export", "short"], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in x]
    wrapper = _LogitsOnly(model, names).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / ONNX_FILE
    B, L = torch.export.Dim("batch"), torch.export.Dim("sequence")
    import logging

    # "torchvision is not installed. Skipping torchvision::nms" x4: irrelevant to text models
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, tuple(x[n] for n in names), str(onnx_path),
                          input_names=names, output_names=["logits"],
                          dynamic_shapes={n: {0: B, 1: L} for n in names},
                          opset_version=opset, dynamo=True, external_data=False, verbose=False)
    model.config.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    if int8:
        fp32 = out_dir / "model.fp32.onnx"
        onnx_path.rename(fp32)
        quantize_int8(fp32, onnx_path)
        fp32.unlink()
    from ..models.students import count_params

    diff = parity(wrapper, out_dir, tok, names)
    info = {"source": str(model_dir), "opset": opset, "int8": int8, "inputs": names,
            "params": count_params(model),
            "params_no_emb": count_params(model, without_embeddings=True),
            "max_abs_diff": diff, "size_mb": round(onnx_path.stat().st_size / 2**20, 2)}
    (out_dir / INFO_FILE).write_text(json.dumps(info, indent=2))
    limit = atol if not int8 else None
    if limit is not None and diff > limit:
        raise ModelError(f"ONNX export of {model_dir} differs from PyTorch by {diff:.2e} "
                         f"(> {limit:.0e}); not usable")
    return info


def quantize_int8(src: Path, dst: Path) -> None:
    """ORT dynamic INT8, per-channel weights. Shape info stored by the dynamo exporter trips
    ORT's quantizer, so the graph's value_info is cleared first."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    m = onnx.load(str(src))
    del m.graph.value_info[:]
    cleared = src.with_name("model.noshape.onnx")
    onnx.save(m, str(cleared))
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT logs "consider pre-processing" (image-model advice)
    try:
        quantize_dynamic(str(cleared), str(dst), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    cleared.unlink()


def parity(torch_fn, onnx_dir: Path, tok, names) -> float:
    sess = OnnxClassifier(onnx_dir)
    a = [s for s, _ in PARITY_SENTENCES]
    x = tok(a, padding=True, return_tensors="pt")
    with torch.inference_mode():
        ref = torch_fn(*(x[n] for n in names)).numpy()
    got = sess(**{n: x[n] for n in names}).logits.numpy()
    return float(np.abs(ref - got).max())
