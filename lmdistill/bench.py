"""Side-by-side CPU inference measurements of several models on the same real inputs.

For each model: latency p50/p90 per batch at each batch size (after warm-up, ≥ 5 timed
repetitions over the same batches), throughput (examples/s), parameters (total and without
embeddings), FLOPs per example, size on disk, peak resident memory added by loading and
running the model (Linux; the process's high-water mark is reset before each model); ratios (speedup, compression) against the FIRST model, which is
normally the teacher. All models see identical batches: real sentences of the task, taken in
dataset order and padded to their batch's longest (dynamic padding, as deployed).
"""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path

import torch

from .data.collate import Encoded, collate, encode
from .models import hub
from .models.students import count_params


def dir_size_mb(path: str | Path) -> float | None:
    p = Path(path)
    if not p.is_dir():
        return None
    n = sum(f.stat().st_size for f in p.iterdir() if f.suffix in (".safetensors", ".bin", ".onnx"))
    return round(n / 2**20, 2)


def _proc_status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> int | None:
    """Reset the process's peak-RSS mark (Linux: ``5 > /proc/self/clear_refs``) after handing
    freed memory back to the OS; returns the current RSS in kB, the baseline the next
    :func:`peak_rss_mb` is measured against."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _proc_status_kb("VmRSS")


def peak_rss_mb(baseline_kb: int | None) -> float | None:
    """Peak resident memory added since ``reset_peak_rss`` (weights + activations), in MB."""
    hwm = _proc_status_kb("VmHWM")
    if baseline_kb is None or hwm is None:
        return None
    return round(max(hwm - baseline_kb, 0) / 1024, 1)


def param_counts(model) -> dict:
    return {"params": count_params(model),
            "params_no_emb": count_params(model, without_embeddings=True)}


def model_kind(ref: str) -> str:
    from .compress.onnx import INFO_FILE, is_onnx_dir
    from .compress.quantize import method_of

    p = Path(hub.resolve(ref))
    if is_onnx_dir(p):
        import json

        return "onnx-int8" if json.loads((p / INFO_FILE).read_text())["int8"] else "onnx-fp32"
    return method_of(p) or "torch-fp32"


@torch.inference_mode()
def flops_per_example(model, enc: Encoded, batch_size: int) -> float | None:
    """FLOPs of one forward pass per example (PyTorch models; counted by torch's
    FlopCounterMode on a real batch, matmuls and convolutions). None for ONNX/quantized."""
    if not isinstance(model, torch.nn.Module):
        return None
    from torch.utils.flop_counter import FlopCounterMode

    b = list(range(min(batch_size, len(enc))))
    x = {k: v for k, v in collate(enc, b, with_labels=False).items() if k != "index"}
    try:
        with FlopCounterMode(display=False) as fc:
            model(**x)
    except Exception:  # noqa: BLE001 - e.g. quantized kernels without a flop formula
        return None
    total = fc.get_total_flops()
    return float(total) / len(b) if total else None


@torch.inference_mode()
def time_model(model, enc: Encoded, batch_size: int, n_batches: int = 4, warmup: int = 1,
               repeats: int = 5) -> dict:
    """Latency per batch (seconds, p50/p90 over ``repeats`` × ``n_batches``) and throughput."""
    batches = [list(range(i * batch_size, (i + 1) * batch_size)) for i in range(n_batches)]
    batches = [b for b in batches if b[-1] < len(enc)]
    if not batches:
        raise ValueError(f"need at least {batch_size} examples to time batch size {batch_size}")
    inputs = [{k: v for k, v in collate(enc, b, with_labels=False).items() if k != "index"}
              for b in batches]
    for _ in range(warmup):
        for x in inputs:
            model(**x)
    times = []
    for _ in range(repeats):
        for x in inputs:
            t0 = time.perf_counter()
            model(**x)
            times.append(time.perf_counter() - t0)
    times.sort()
    p50 = statistics.median(times)
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    return {"p50_ms": round(p50 * 1e3, 3), "p90_ms": round(p90 * 1e3, 3),
            "throughput": round(batch_size / p50, 1), "timed_runs": len(times)}


def bench(models: dict[str, str], task: str = "sst2", split: str = "dev",
          batch_sizes: tuple[int, ...] = (1, 32), data_dir: str | None = None,
          threads: int | None = None, repeats: int = 5, max_length: int = 128,
          n_batches: int = 4) -> dict:
    """Measure ``{label: model ref}`` side by side; the first is the reference for ratios."""
    from .data.tasks import get_task

    if threads:
        torch.set_num_threads(threads)
    t = get_task(task, data_dir=data_dir)
    examples = t.load(split)
    rows = []
    for label, ref in models.items():
        tok = hub.load_tokenizer(ref)
        kind = model_kind(ref)
        counts = None
        if kind.startswith("torch") and kind != "torch-fp32":
            # quantized modules hide their packed weights: count the FP32 network
            fp = hub.load_classifier(ref, quantized=False)
            counts = param_counts(fp)
            del fp
        baseline = reset_peak_rss()
        model = hub.load_classifier(ref).eval()
        enc = encode(examples[: max(batch_sizes) * n_batches], tok, max_length)
        counts = counts or getattr(model, "param_counts", None) or param_counts(model)
        row = {"label": label, "model": ref, "kind": kind, **counts,
               "size_mb": dir_size_mb(hub.resolve(ref)),
               "flops_per_example": flops_per_example(model, enc, max(batch_sizes))}
        for bs in batch_sizes:
            row[f"batch{bs}"] = time_model(model, enc, bs, n_batches, repeats=repeats)
        row["peak_mem_mb"] = peak_rss_mb(baseline)  # weights + activations while timing
        rows.append(row)
        del model
    ref = rows[0]
    for r in rows:
        r["compression"] = round(ref["params"] / r["params"], 2)
        r["compression_no_emb"] = round(ref["params_no_emb"] / max(r["params_no_emb"], 1), 2)
        for bs in batch_sizes:
            r[f"batch{bs}"]["speedup"] = round(ref[f"batch{bs}"]["p50_ms"] /
                                               r[f"batch{bs}"]["p50_ms"], 2)
    return {"task": task, "split": split, "threads": torch.get_num_threads(),
            "batch_sizes": list(batch_sizes), "repeats": repeats, "models": rows}


def table(result: dict) -> str:
    """Markdown table of a :func:`bench` result."""
    bss = result["batch_sizes"]
    head = ["model", "params", "params w/o emb"] + [
        h for bs in bss for h in (f"p50 ms @{bs}", f"speedup @{bs}")] + [
        "ex/s @" + str(bss[-1]), "peak MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["models"]:
        cells = [r["label"], f"{r['params'] / 1e6:.1f}M", f"{r['params_no_emb'] / 1e6:.2f}M"]
        for bs in bss:
            cells += [f"{r[f'batch{bs}']['p50_ms']:.1f}", f"{r[f'batch{bs}']['speedup']:.2f}×"]
        cells.append(f"{r[f'batch{bss[-1]}']['throughput']:.0f}")
        cells.append(str(r.get("peak_mem_mb")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
