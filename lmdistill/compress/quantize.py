"""Post-training dynamic INT8 quantization of any saved classifier, chosen for the machine.

Backends (which one is fastest depends on the CPU's ISA and on the model; a backend can be
*slower* than FP32, as torchao was reported to be on an AVX2-only CPU in issue 7, which is why
the default measures instead of assuming):

- ``torch-dynamic-int8``: ``torch.ao.quantization.quantize_dynamic`` on ``nn.Linear``
  (per-tensor int8 weights, fbgemm/x86 kernels).
- ``onnx-int8``: ONNX export + ONNX Runtime dynamic INT8, per-channel weights
  (:mod:`lmdistill.compress.onnx`); the output folder is an ONNX folder.
- ``torchao-int8``: torchao ``Int8DynamicActivationInt8WeightConfig`` (per-channel weights,
  activations per token at run time). Optional: used when torchao imports.
- ``bf16``: the model in bfloat16 (weights and activations; logits returned as bf16, read as
  float). Not INT8, but the same kind of trade: on a CPU with AMX-BF16 (or AVX512-BF16) the
  matmuls run natively and it can beat every INT8 backend; on an AVX2-only CPU it is emulated
  and slow, which ``auto``'s timing finds and refuses.
- ``auto`` (the default): :func:`quantize_auto` times FP32 and every backend that works here on
  real inputs, side by side in one run, keeps those whose task metric stays within
  ``tolerance`` points of FP32, picks the fastest, and writes the choice with every
  measurement to ``quantization_choice.json``. If no backend is faster than FP32 it refuses
  (:class:`QuantizationRefused`) unless ``force=True``, which writes the fastest with a loud
  warning. An explicit backend gets the same speed check.

torch/torchao quantized tensors cannot be written by ``save_pretrained`` (safetensors), so such
a folder holds the FP32 weights plus ``lmdistill_quantization.json`` naming the method;
:func:`lmdistill.models.hub.load_classifier` applies it on load (deterministic, < 1 s).
Every folder loads through the same API as any model (``evaluate``, ``bench``). INT8 models run
on the CPU.
"""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import torch

from ..bench import time_side_by_side, timing_inputs
from ..errors import ConfigError
from ..models.runtimes import METHODS, QUANT_FILE, apply, method_of  # noqa: F401

CHOICE_FILE = "quantization_choice.json"
BACKENDS = METHODS[1:]


class QuantizationRefused(ConfigError):
    """No INT8 backend is faster than the FP32 model on this machine (and no ``force``)."""


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown quantization method '{method}'; choose from "
                          f"{', '.join(METHODS)}")


def write_quantized(model_dir: str | Path, out_dir: str | Path, method: str) -> dict:
    """Write ``model_dir`` quantized with one backend to ``out_dir``, without any check (the
    building block of :func:`quantize`; benchmarks use it to compare every backend)."""
    from ..models import hub

    _check_method(method)
    if method == "auto":
        raise ConfigError("write_quantized needs a backend, not 'auto'")
    src, dst = Path(hub.resolve(str(model_dir))), Path(out_dir)
    if (src / QUANT_FILE).exists():
        raise ConfigError(f"{src} is already quantized")
    if method == "onnx-int8":
        from .onnx import export_onnx

        info = export_onnx(src, dst, int8=True)
        return {"method": method, "source": str(src), "max_abs_diff": info["max_abs_diff"]}
    hub.load_classifier(str(src))  # validates the folder before copying
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.onnx", QUANT_FILE, CHOICE_FILE))
    info = {"method": method, "source": str(src)}
    (dst / QUANT_FILE).write_text(json.dumps(info, indent=2))
    return info


def available_backends() -> dict[str, str | None]:
    """Backend -> None if it can run here, else why not."""
    out: dict[str, str | None] = {}
    engines = torch.backends.quantized.supported_engines
    out["torch-dynamic-int8"] = (None if any(e in engines for e in ("x86", "fbgemm", "qnnpack"))
                                 else f"no quantized engine in this torch ({engines})")
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
        out["onnx-int8"] = None
    except ImportError as e:
        out["onnx-int8"] = f"not installed ({e.name})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torchao  # noqa: F401
        out["torchao-int8"] = None
    except Exception as e:  # noqa: BLE001 - torchao built for another torch fails in many ways
        out["torchao-int8"] = f"not usable ({type(e).__name__}: {str(e).splitlines()[0][:80]})"
    out["bf16"] = None  # runs everywhere; whether it is fast is for the timing to say
    return out


# ------------------------------------------------------------------ selection
def select(measured: dict[str, dict], tolerance: float = 1.0, force: bool = False,
           base: str = "fp32") -> dict:
    """Choose among measured variants. ``measured[name]`` has ``latency_ms`` (at the selection
    batch size; None if it failed), optionally ``metric`` (the task metric, higher better; None
    if not evaluated) and ``error``. ``base`` names the FP32 entry.

    Keeps the variants that ran, are faster than FP32 (unless ``force``) and lose at most
    ``tolerance`` points (100 × metric difference) against FP32; returns ``{"choice",
    "reasons", "slower_than_fp32"}``; raises :class:`QuantizationRefused` when none is left.
    """
    b = measured[base]
    reasons: dict[str, str] = {}
    ok = []
    for name, m in measured.items():
        if name == base:
            continue
        if m.get("error"):
            reasons[name] = f"failed: {m['error']}"
            continue
        lat = m["latency_ms"]
        ratio = b["latency_ms"] / lat
        if lat >= b["latency_ms"] and not force:
            reasons[name] = f"slower than FP32 ({lat:.1f} vs {b['latency_ms']:.1f} ms, {ratio:.2f}×)"
            continue
        if b.get("metric") is not None:
            if m.get("metric") is None:
                reasons[name] = "accuracy not measured"
                continue
            drop = 100 * (b["metric"] - m["metric"])
            if drop > tolerance + 1e-9:  # 100·(0.90 − 0.89) is 1.0000000000000009
                reasons[name] = f"loses {drop:.2f} points (> {tolerance})"
                continue
        reasons[name] = f"eligible: {lat:.1f} ms ({ratio:.2f}× FP32)"
        ok.append(name)
    if not ok:
        detail = "; ".join(f"{k}: {v}" for k, v in reasons.items())
        raise QuantizationRefused(
            f"no INT8/BF16 backend is faster than FP32 within {tolerance} points on this machine "
            f"({detail}); keep the FP32 model, or pass --force to write the fastest anyway")
    choice = min(ok, key=lambda n: measured[n]["latency_ms"])
    slower = measured[choice]["latency_ms"] >= b["latency_ms"]
    return {"choice": choice, "reasons": reasons, "slower_than_fp32": slower}


# ------------------------------------------------------------------ the command
def quantize(model_dir: str | Path, out_dir: str | Path, method: str = "auto",
             task: str | None = None, split: str = "dev", data_dir: str | None = None,
             tolerance: float = 1.0, force: bool = False, texts_file: str | None = None,
             batch_size: int = 32, n_batches: int = 3, repeats: int = 5,
             eval_limit: int | None = None, max_length: int = 128, progress: bool = True,
             log=None) -> dict:
    """Write an INT8 copy of ``model_dir`` to ``out_dir`` that is faster than FP32 here.

    ``method="auto"`` tries every backend that works on this machine; a named backend is the
    only candidate. Timing uses ``task``'s ``split`` sentences (or ``texts_file``, or built-in
    sentences without a data directory); the accuracy check (``tolerance`` points of the
    task's primary metric) needs ``task`` with its data. Returns the choice record, also
    written as ``out_dir/quantization_choice.json``.
    """
    from ..models import hub

    _check_method(method)
    say = log or (lambda m: print(m, file=sys.stderr))
    src, dst = Path(hub.resolve(str(model_dir))), Path(out_dir)
    if (src / QUANT_FILE).exists():
        raise ConfigError(f"{src} is already quantized")
    avail = available_backends()
    cands = [m for m in BACKENDS if m == method or method == "auto"]
    if method != "auto" and avail[method] is not None:
        raise ConfigError(f"quantization backend '{method}' cannot run here: {avail[method]}")
    work = dst.with_name(dst.name + ".candidates")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        return _quantize_in(src, dst, work, method, cands, avail, task, split, data_dir,
                            tolerance, force, texts_file, batch_size, n_batches, repeats,
                            eval_limit, max_length, progress, say)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _quantize_in(src, dst, work, method, cands, avail, task, split, data_dir, tolerance, force,
                 texts_file, batch_size, n_batches, repeats, eval_limit, max_length, progress,
                 say) -> dict:
    from ..data.sample_texts import timing_texts
    from ..hardware import machine_info
    from ..models import hub

    measured: dict[str, dict] = {"fp32": {"folder": str(src)}}
    folders = {"fp32": src}
    for m in cands:
        if avail[m] is not None:
            measured[m] = {"error": avail[m], "latency_ms": None}
            continue
        say(f"quantize: building {m}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                write_quantized(src, work / m, m)
            folders[m] = work / m
            measured[m] = {}
        except Exception as e:  # noqa: BLE001 - one failing backend must not stop the others
            measured[m] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}",
                           "latency_ms": None}
    # ---- speed, side by side on the same real batches
    texts, source = timing_texts(task, split, data_dir, texts_file, need=batch_size * n_batches)
    tok = hub.load_tokenizer(str(src))
    models = {}
    for name, f in folders.items():
        try:
            models[name] = hub.load_classifier(str(f)).eval()
        except Exception as e:  # noqa: BLE001
            measured[name] = {"error": f"cannot load: {str(e).splitlines()[0][:200]}",
                              "latency_ms": None}
    if "fp32" not in models:
        raise ConfigError(f"cannot load {src} to time it")
    say(f"quantize: timing {', '.join(models)} at batch {batch_size} and 1 on {source}")
    from ..data.collate import encode
    from ..data.tasks import Example

    enc = encode([Example(a, b, None, i) for i, (a, b) in enumerate(texts)], tok, max_length)
    for bs, nb, key in ((batch_size, n_batches, "latency_ms"), (1, 8, "latency_ms_b1")):
        inputs = timing_inputs(enc, bs, nb)
        for name, t in time_side_by_side(models, inputs, repeats, progress=progress).items():
            if t.get("error"):
                measured[name].update(error=t["error"], latency_ms=None)
                continue
            measured[name][key] = t["latency_ms"]
            measured[name].setdefault("timing", {})[f"batch{bs}"] = t
    del models
    # ---- accuracy of FP32 and of every candidate that could be chosen
    metric_name = None
    if task is not None:
        from .. import api
        from ..data.tasks import get_task
        from ..errors import DataError

        try:
            t = get_task(task, data_dir=data_dir)
            t.load(split)
            metric_name = t.primary_metric
        except DataError as e:
            say(f"quantize: accuracy not checked ({e})")
    else:
        say("quantize: no --task given: speed checked, accuracy NOT checked")
    if metric_name is not None:
        base_lat = measured["fp32"]["latency_ms"]
        for name, f in folders.items():
            m = measured[name]
            if m.get("error"):
                continue
            if name != "fp32" and m["latency_ms"] >= base_lat and not force:
                m["metric"] = None
                m["metric_skipped"] = "slower than FP32"
                continue
            say(f"quantize: evaluating {name} on {task} {split}")
            ev = api.evaluate(str(f), task, split, data_dir, eval_limit, max_length=max_length,
                              progress=progress)
            m["metric"] = ev[metric_name]
    sel = select(measured, tolerance, force) if len(measured) > 1 else None
    if sel is None:
        raise ConfigError("no quantization backend to try")
    choice = sel["choice"]
    if sel["slower_than_fp32"]:
        msg = (f"WARNING: {choice} is SLOWER than the FP32 model on this machine "
               f"({measured[choice]['latency_ms']:.1f} vs {measured['fp32']['latency_ms']:.1f} "
               f"ms at batch {batch_size}); written only because force=True")
        warnings.warn(msg, stacklevel=2)
        say(msg)
    if dst.exists():
        shutil.rmtree(dst)
    shutil.move(str(folders[choice]), dst)
    b = measured["fp32"]
    record = {
        "method": choice, "requested": method, "source": str(src), "metric": metric_name,
        "tolerance_points": tolerance, "force": force, "batch_size": batch_size,
        "timing_texts": source, "speedup": round(b["latency_ms"] /
                                                 measured[choice]["latency_ms"], 3),
        "speedup_b1": round(b["latency_ms_b1"] / measured[choice]["latency_ms_b1"], 3),
        "slower_than_fp32": sel["slower_than_fp32"], "reasons": sel["reasons"],
        "measurements": measured, "machine": machine_info(),
    }
    (dst / CHOICE_FILE).write_text(json.dumps(record, indent=2, default=str))
    say(f"quantize: chose {choice}: {b['latency_ms']:.1f} -> "
        f"{measured[choice]['latency_ms']:.1f} ms at batch {batch_size} "
        f"({record['speedup']:.2f}×)" + (f", {metric_name} {b.get('metric'):.4f} -> "
                                         f"{measured[choice].get('metric'):.4f}"
                                         if metric_name else ""))
    return record
