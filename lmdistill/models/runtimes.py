"""Loading what ``lmdistill quantize`` and ``lmdistill export`` write, so that every model
folder loads through :func:`lmdistill.models.hub.load_classifier`: ONNX folders as an ONNX
Runtime session that answers like an HF classifier, quantized folders (FP32 weights +
``lmdistill_quantization.json``) quantized again on load. Writers live in
:mod:`lmdistill.compress`; this module is what the loader needs, so ``models`` does not import
``compress`` (and ``compress`` imports ``models``, one way).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ..errors import ConfigError

ONNX_FILE = "model.onnx"
INFO_FILE = "onnx_export.json"
QUANT_FILE = "lmdistill_quantization.json"
METHODS = ("auto", "torch-dynamic-int8", "onnx-int8", "torchao-int8", "bf16")


def apply(model: torch.nn.Module, method: str) -> torch.nn.Module:
    """Quantize ``model`` in place (returns it)."""
    if method == "torchao-int8":
        import logging

        logging.getLogger("torchao").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
            except ImportError as e:
                raise ConfigError("quantization method 'torchao-int8' needs torchao "
                                  "(pip install torchao), or use --method auto") from e
            quantize_(model, Int8DynamicActivationInt8WeightConfig())
        return model
    if method == "bf16":  # bfloat16 weights and activations (fast where the CPU has AMX-BF16)
        return model.to(torch.bfloat16)
    if method == "torch-dynamic-int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear},
                                                          dtype=torch.qint8)
    raise ConfigError(f"unknown quantization method '{method}'; choose from {', '.join(METHODS)}")


def method_of(path: str | Path) -> str | None:
    f = Path(path) / QUANT_FILE
    return json.loads(f.read_text())["method"] if f.exists() else None


class OnnxClassifier:
    """An ONNX Runtime session that answers like an HF classifier: ``m(**inputs).logits``."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort
        from transformers import AutoConfig

        self.path = Path(path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or torch.get_num_threads()
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path / ONNX_FILE), so,
                                            providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.config = AutoConfig.from_pretrained(self.path)

    def eval(self):
        return self

    def to(self, *_a, **_k):
        return self

    def __call__(self, **inputs) -> SimpleNamespace:
        feed = {k: inputs[k].cpu().numpy().astype(np.int64) for k in self.inputs}
        return SimpleNamespace(logits=torch.from_numpy(self.session.run(["logits"], feed)[0]))

    @property
    def param_counts(self) -> dict:
        """Parameters of the exported PyTorch model (ONNX renames/quantizes initializers)."""
        info = json.loads((self.path / INFO_FILE).read_text())
        return {"params": info["params"], "params_no_emb": info["params_no_emb"]}


def is_onnx_dir(path: str | Path) -> bool:
    return (Path(path) / ONNX_FILE).exists()

