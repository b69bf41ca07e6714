"""Post-training dynamic INT8 quantization of any saved classifier (teacher or any student).

Methods (compared in BENCHMARKS.md):

- ``torchao-int8`` (default): torchao ``Int8DynamicActivationInt8WeightConfig``: int8 weights,
  per output channel, activations quantized per token at run time; maintained API.
- ``torch-dynamic-int8``: ``torch.ao.quantization.quantize_dynamic`` on ``nn.Linear``
  (per-tensor weights); deprecated in torch 2.13 (it warns), kept for comparison.
- ``onnx-int8``: see :mod:`lmdistill.compress.onnx` (ONNX Runtime, per-channel).

torchao's quantized tensors cannot be written by ``save_pretrained`` (safetensors), so a
quantized folder holds the FP32 weights plus ``lmdistill_quantization.json`` naming the method;
:func:`lmdistill.models.hub.load_classifier` applies it on load (deterministic, < 1 s). The
folder loads through the same API as any model.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import torch

from ..errors import ConfigError

QUANT_FILE = "lmdistill_quantization.json"
METHODS = ("torchao-int8", "torch-dynamic-int8")


def apply(model: torch.nn.Module, method: str) -> torch.nn.Module:
    """Quantize ``model`` in place (returns it)."""
    if method == "torchao-int8":
        import logging

        logging.getLogger("torchao").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

            quantize_(model, Int8DynamicActivationInt8WeightConfig())
        return model
    if method == "torch-dynamic-int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear},
                                                          dtype=torch.qint8)
    raise ConfigError(f"unknown quantization method '{method}'; choose from "
                      f"{', '.join(METHODS)} (or `lmdistill export --onnx --int8`)")


def quantize(model_dir: str | Path, out_dir: str | Path, method: str = "torchao-int8") -> dict:
    """Write a quantized copy of ``model_dir`` to ``out_dir``."""
    from ..models import hub

    if method not in METHODS:
        raise ConfigError(f"unknown quantization method '{method}'; choose from "
                          f"{', '.join(METHODS)} (or `lmdistill export --onnx --int8`)")
    src, dst = Path(hub.resolve(str(model_dir))), Path(out_dir)
    if (src / QUANT_FILE).exists():
        raise ConfigError(f"{src} is already quantized")
    hub.load_classifier(str(src))  # validates the folder before copying
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.onnx", QUANT_FILE))
    info = {"method": method, "source": str(src)}
    (dst / QUANT_FILE).write_text(json.dumps(info, indent=2))
    return info


def method_of(path: str | Path) -> str | None:
    f = Path(path) / QUANT_FILE
    return json.loads(f.read_text())["method"] if f.exists() else None
