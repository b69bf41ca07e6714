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
- ``auto`` (the default): :func:`quantize` times FP32 and every backend that works here on
  real inputs, side by side in one run (interleaved rounds at the chosen batch size and at
  batch 1), keeps those that pass the accuracy gates and are faster than FP32 by more than the
  timing noise of that run, picks the fastest, and writes the choice with every measurement to
  ``quantization_choice.json``. An explicit backend gets the same checks.

Accuracy gates: always, each backend's predictions on the timing sentences are compared with
FP32's (:func:`compare_predictions`): it must give FP32's label on at least ``MIN_AGREEMENT``
(0.95) of them (regression: max |difference| at most ``MAX_REGRESSION_DIFF`` (0.75) × the
standard deviation of FP32's predictions); with ``task`` its dev metric must also stay within
``tolerance`` points of FP32's. Speed gate (:func:`speed_check`): at every timed batch size the
one-sided 95% bootstrap lower bound of the speedup (ratio of median per-round latencies,
:func:`lmdistill.bench.speedup_interval`) must exceed 1. If no backend passes, it refuses
(:class:`QuantizationRefused`, with every backend's reason and the measurements) and the FP32
model stays the one to deploy; ``force=True`` lifts the speed gate only (the fastest that
agrees is written with a loud warning), never the accuracy gates.

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
from .select import (MAX_REGRESSION_DIFF, MIN_AGREEMENT, SPEED_LEVEL,  # noqa: F401
                     QuantizationRefused, _speed_reason, accuracy_gate, compare_predictions,
                     select, speed_check)

CHOICE_FILE = "quantization_choice.json"
BACKENDS = METHODS[1:]


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


# ------------------------------------------------------------------ the gates
def quantize(model_dir: str | Path, out_dir: str | Path, method: str = "auto",
             task: str | None = None, split: str = "dev", data_dir: str | None = None,
             tolerance: float = 1.0, force: bool = False, texts_file: str | None = None,
             batch_size: int = 32, n_batches: int = 3, repeats: int = 5,
             eval_limit: int | None = None, max_length: int = 128, progress: bool = True,
             log=None, min_agreement: float = MIN_AGREEMENT,
             max_regression_diff: float = MAX_REGRESSION_DIFF) -> dict:
    """Write an INT8 copy of ``model_dir`` to ``out_dir`` that is faster than FP32 here.

    ``method="auto"`` tries every backend that works on this machine; a named backend is the
    only candidate. Timing uses ``task``'s ``split`` sentences (or ``texts_file``, or built-in
    sentences without a data directory), ``repeats`` interleaved rounds at ``batch_size`` and at
    batch 1; a backend counts as faster only when the bootstrap lower bound of its speedup
    exceeds 1 at both (:func:`speed_check`). Accuracy is always checked as agreement with
    FP32's predictions on the timing sentences (``min_agreement``; regression:
    ``max_regression_diff``, :func:`accuracy_gate`); with ``task`` and its data also as the
    task's primary metric (at most ``tolerance`` points lost). Returns the choice record, also
    written as ``out_dir/quantization_choice.json``; a refusal
    (:class:`QuantizationRefused`) carries the measurements as its ``record``.
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
                            eval_limit, max_length, progress, say, min_agreement,
                            max_regression_diff)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _quantize_in(src, dst, work, method, cands, avail, task, split, data_dir, tolerance, force,
                 texts_file, batch_size, n_batches, repeats, eval_limit, max_length, progress,
                 say, min_agreement, max_regression_diff) -> dict:
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
    # ---- agreement with FP32 on the timing sentences: the accuracy gate that always applies
    sentences = _distinct_batches(texts[:batch_size * n_batches], tok, max_length, batch_size)
    n_sent = sum(len(x["input_ids"]) for x in sentences)
    say(f"quantize: comparing predictions with FP32 on the {n_sent} distinct timing sentences")
    outs = {}
    with torch.inference_mode():
        for name, model in models.items():
            m = measured[name]
            if m.get("error"):
                continue
            if name != "fp32" and not force and any(
                    t.get("stopped_early") for t in m.get("timing", {}).values()):
                m["agreement_skipped"] = "stopped early: far slower than FP32"
                continue
            try:
                outs[name] = torch.cat([model(**x).logits.float() for x in sentences])
            except Exception as e:  # noqa: BLE001 - a backend that fails at run time
                if name == "fp32":
                    raise
                m.update(error=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}",
                         latency_ms=None)
    for name, o in outs.items():
        if name != "fp32":
            measured[name]["agreement"] = compare_predictions(outs["fp32"], o)
    del models, outs
    # ---- accuracy of FP32 and of every candidate that could be chosen
    metric_name = None
    if task is not None:
        from ..data.tasks import get_task
        from ..errors import DataError
        from ..methods.evaluate import evaluate

        try:
            t = get_task(task, data_dir=data_dir)
            t.load(split)
            metric_name = t.primary_metric
        except DataError as e:
            say(f"quantize: accuracy not checked ({e})")
    else:
        say("quantize: no --task given: accuracy checked as agreement with FP32's predictions "
            "on the timing sentences only (no task metric)")
    if metric_name is not None:
        for name, f in folders.items():
            m = measured[name]
            if m.get("error"):
                continue
            if name != "fp32":
                bad = accuracy_gate(m.get("agreement"), min_agreement, max_regression_diff)
                fast = speed_check(measured["fp32"], m)["faster"]
                if bad or not (fast or force):
                    m["metric"] = None
                    m["metric_skipped"] = ("disagrees with FP32" if bad else
                                           "not reliably faster than FP32")
                    continue
            say(f"quantize: evaluating {name} on {task} {split}")
            ev = evaluate(str(f), task, split, data_dir, eval_limit, max_length=max_length,
                          progress=progress)
            m["metric"] = ev[metric_name]
    if len(measured) < 2:
        raise ConfigError("no quantization backend to try")
    for name, m in measured.items():  # the speed figures, in the record whatever is chosen
        if name != "fp32" and not m.get("error"):
            m["speed"] = speed_check(measured["fp32"], m)
    try:
        sel = select(measured, tolerance, force, min_agreement=min_agreement,
                     max_regression_diff=max_regression_diff)
    except QuantizationRefused as e:
        e.record = {"requested": method, "source": str(src), "metric": metric_name,
                    "min_agreement": min_agreement, "timing_texts": source,
                    "measurements": measured, "machine": machine_info()}
        raise
    choice = sel["choice"]
    if sel["slower_than_fp32"]:
        why = _speed_reason(sel["speed"][choice])
        what = "SLOWER than" if why.startswith("slower") else "not reliably faster than"
        msg = (f"WARNING: {choice} is {what} the FP32 model on this machine ({why}); written "
               "only because force=True")
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
        "accuracy_checks": ["agreement with FP32 on the timing sentences"] +
                           ([f"{metric_name} on {task} {split}"] if metric_name else []),
        "min_agreement": min_agreement, "max_regression_diff": max_regression_diff,
        "speed_level": SPEED_LEVEL,
        "agreement": {n: m.get("agreement") for n, m in measured.items() if n != "fp32"},
        "speed": sel["speed"], "measurements": measured, "machine": machine_info(),
    }
    (dst / CHOICE_FILE).write_text(json.dumps(record, indent=2, default=str))
    say(f"quantize: chose {choice}: {b['latency_ms']:.1f} -> "
        f"{measured[choice]['latency_ms']:.1f} ms at batch {batch_size} "
        f"({record['speedup']:.2f}×), agreement with FP32 "
        f"{_agreement_line(measured[choice]['agreement'])}"
        + (f", {metric_name} {b.get('metric'):.4f} -> {measured[choice].get('metric'):.4f}"
           if metric_name else ""))
    return record


def _distinct_batches(texts, tok, max_length: int, batch_size: int) -> list[dict]:
    """``texts`` without repeats (the built-in sentences are repeated to fill the timing
    batches; a repeated sentence must not count twice in the agreement), as model inputs."""
    from ..data.collate import collate, encode
    from ..data.tasks import Example

    uniq = list(dict.fromkeys(texts))
    enc = encode([Example(a, b, None, i) for i, (a, b) in enumerate(uniq)], tok, max_length)
    return [{k: v for k, v in collate(enc, list(range(i, min(i + batch_size, len(uniq)))),
                                      with_labels=False).items() if k != "index"}
            for i in range(0, len(uniq), batch_size)]


def _agreement_line(cmp: dict) -> str:
    if cmp["kind"] == "regression":
        return f"max |diff| {cmp['max_abs_diff']:.3g} ({cmp['relative_diff']:.2g}× FP32's std)"
    return (f"{cmp['agreement']:.1%} of {cmp['n']} "
            f"(max |logit diff| {cmp['max_abs_logit_diff']:.3g})")
