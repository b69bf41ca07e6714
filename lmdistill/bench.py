"""Side-by-side inference measurements of several models on the same real inputs.

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
    from .models.runtimes import INFO_FILE, is_onnx_dir, method_of

    p = Path(hub.resolve(ref))
    if is_onnx_dir(p):
        import json

        return "onnx-int8" if json.loads((p / INFO_FILE).read_text())["int8"] else "onnx-fp32"
    return method_of(p) or "torch-fp32"


@torch.inference_mode()
def flops_per_example(model, enc: Encoded, batch_size: int,
                      device: torch.device | None = None) -> float | None:
    """FLOPs of one forward pass per example (PyTorch models; counted by torch's
    FlopCounterMode on a real batch, matmuls and convolutions). None for ONNX/quantized."""
    if not isinstance(model, torch.nn.Module):
        return None
    from torch.utils.flop_counter import FlopCounterMode

    b = list(range(min(batch_size, len(enc))))
    x = {k: v.to(device or "cpu") for k, v in collate(enc, b, with_labels=False).items()
         if k != "index"}
    try:
        with FlopCounterMode(display=False) as fc:
            model(**x)
    except Exception:  # noqa: BLE001 - e.g. quantized kernels without a flop formula
        return None
    total = fc.get_total_flops()
    return float(total) / len(b) if total else None


def timing_inputs(enc: Encoded, batch_size: int, n_batches: int,
                  device: torch.device | None = None) -> list[dict]:
    """The first ``n_batches`` batches of ``enc`` in dataset order, padded to their longest,
    as model inputs on ``device``: what every timing in lmdistill runs on."""
    batches = [list(range(i * batch_size, (i + 1) * batch_size)) for i in range(n_batches)]
    batches = [b for b in batches if b[-1] < len(enc)]
    if not batches:
        raise ValueError(f"need at least {batch_size} examples to time batch size {batch_size}")
    dev = torch.device(device or "cpu")
    return [{k: v.to(dev) for k, v in collate(enc, b, with_labels=False).items()
             if k != "index"} for b in batches]


def run_batches(model, inputs: list[dict], device: torch.device) -> list[float]:
    """Seconds per batch for one pass of ``model`` over ``inputs``."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out = []
    for x in inputs:
        t0 = time.perf_counter()
        model(**x)
        sync()  # CUDA kernels run asynchronously: wait for them before reading the clock
        out.append(time.perf_counter() - t0)
    return out


def latency_stats(times: list[float], batch_size: int) -> dict:
    """p50 / p90 latency (ms), throughput at p50 and the number of timed batches."""
    times = sorted(times)
    p50 = statistics.median(times)
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    return {"p50_ms": round(p50 * 1e3, 3), "p90_ms": round(p90 * 1e3, 3),
            "throughput": round(batch_size / p50, 1), "timed_runs": len(times)}


def time_side_by_side(models: dict[str, object], inputs: list[dict], repeats: int = 5,
                      give_up_ratio: float = 4.0, progress: bool = False) -> dict[str, dict]:
    """p50 latency (ms) of each model on the same ``inputs`` batches, the models interleaved
    in every round so that machine noise hits all alike. A model already ``give_up_ratio``×
    slower than the first one after the warm-up round is timed no further (its warm-up
    times are its figures): a 4-second-per-batch kernel need not be measured 20 times."""
    names = list(models)
    times: dict[str, list[float]] = {n: [] for n in names}
    dropped: set[str] = set()
    errors: dict[str, str] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=(repeats + 1) * len(names), desc="timing", leave=False,
                   dynamic_ncols=True)
    with torch.inference_mode():
        for r in range(repeats + 1):  # round 0 is the warm-up
            for n in names:
                if n in dropped:
                    continue
                try:
                    got = run_batches(models[n], inputs, torch.device("cpu"))
                except Exception as e:  # noqa: BLE001 - a backend that fails at run time
                    if n == names[0]:
                        raise
                    errors[n] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                    dropped.add(n)
                    continue
                if r == 0:
                    warm = statistics.median(got)
                    ref = statistics.median(times[names[0]]) if times[names[0]] else None
                    times[n] = got  # replaced by timed rounds below unless dropped
                    if n != names[0] and ref and warm > give_up_ratio * ref:
                        dropped.add(n)
                else:
                    if r == 1 and n not in dropped:
                        times[n] = []
                    times[n].extend(got)
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    per = max(len(inputs), 1)
    return {n: ({"error": errors[n], "latency_ms": None} if n in errors else
                {"latency_ms": round(1e3 * statistics.median(t), 3), "runs": len(t),
                 # one figure per round (mean ms per batch over the round's batches): the
                 # samples the speed check's noise estimate (speedup_interval) is made from
                 "rounds_ms": [round(1e3 * sum(t[i:i + per]) / per, 3)
                               for i in range(0, len(t) - per + 1, per)],
                 "stopped_early": n in dropped}) for n, t in times.items()}


def speedup_interval(base_ms: list[float], ms: list[float], level: float = 0.95,
                     n_boot: int = 2000, seed: int = 0) -> dict:
    """How much faster ``ms`` is than ``base_ms`` (per-round latencies of two models timed in
    the same interleaved rounds), with the timing noise of that run.

    ``speedup`` is the ratio of the medians (base / other); ``low`` and ``high`` are the
    one-sided ``level`` bounds of that ratio from a percentile bootstrap (rounds of each model
    resampled independently, ``n_boot`` times, fixed ``seed``: the same samples give the same
    answer). ``low > 1`` means faster by more than the noise; with fewer than 3 rounds of
    either model there is no noise estimate and ``low``/``high`` are None. Pure function."""
    import numpy as np

    b, c = np.asarray(base_ms, dtype=float), np.asarray(ms, dtype=float)
    if not len(b) or not len(c):
        raise ValueError("speedup_interval needs at least one timing of each model")
    out = {"speedup": round(float(np.median(b) / np.median(c)), 4), "low": None,
           "high": None, "rounds": [len(b), len(c)]}
    if min(len(b), len(c)) < 3:
        return out
    rng = np.random.default_rng(seed)
    mb = np.median(b[rng.integers(0, len(b), (n_boot, len(b)))], axis=1)
    mc = np.median(c[rng.integers(0, len(c), (n_boot, len(c)))], axis=1)
    r = mb / mc
    out["low"] = round(float(np.quantile(r, 1 - level)), 4)
    out["high"] = round(float(np.quantile(r, level)), 4)
    return out


def base_of(ref: str) -> str | None:
    """The FP32 folder a quantized / ONNX folder was made from (None for an FP32 model)."""
    import json

    from .models.runtimes import INFO_FILE, QUANT_FILE, is_onnx_dir

    p = Path(hub.resolve(ref))
    for f in (p / QUANT_FILE, p / INFO_FILE if is_onnx_dir(p) else None):
        if f is not None and f.exists():
            src = json.loads(f.read_text()).get("source")
            return str(Path(src).resolve()) if src else None
    return None


def bench(models: dict[str, str], task: str | None = "sst2", split: str = "dev",
          batch_sizes: tuple[int, ...] = (1, 32), data_dir: str | None = None,
          threads: int | None = None, repeats: int = 5, max_length: int = 128,
          n_batches: int = 4, texts_file: str | None = None, device: str = "cpu",
          progress: bool = False) -> dict:
    """Measure ``{label: model ref}`` side by side; the first is the reference for ratios.

    Every model is loaded and warmed up first (its peak memory measured then, one model at a
    time); the timed passes are then interleaved: each of the ``repeats`` rounds runs every
    model over the same batches in turn, so a noisy spell of the machine (other processes, a
    neighbour on the host) hits all models alike instead of the few timed during it.

    Inputs: ``texts_file`` if given, else the sentences of ``task``'s ``split``, else (no data
    directory) built-in sentences; the result says which (``texts``). ``device="cuda"`` times
    FP32 PyTorch models on the GPU (INT8 and ONNX models always run on the CPU; each row names
    its device). The result records the machine (CPU model, ISA, threads, GPU); a quantized or
    ONNX variant slower than its FP32 base (when that base is benched too) is flagged
    ``slower_than_base``.
    """
    from .data.sample_texts import timing_texts
    from .data.tasks import Example
    from .hardware import machine_info

    if threads:
        torch.set_num_threads(threads)
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError(f"device must be cpu, cuda or auto, not {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        from .errors import ConfigError

        raise ConfigError("--device cuda: no CUDA GPU here")
    need = max(batch_sizes) * n_batches
    texts, source = timing_texts(task, split, data_dir, texts_file, need=need)
    examples = [Example(a, b, None, i) for i, (a, b) in enumerate(texts[:need])]
    rows, loaded = [], []
    it = models.items()
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(list(it), desc="bench: load + warm up", leave=False, dynamic_ncols=True)
    for label, ref in it:
        if progress:
            it.set_postfix_str(label)
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
        dev = torch.device(device if kind == "torch-fp32" else "cpu")
        model = model.to(dev)
        enc = encode(examples, tok, max_length)
        counts = counts or getattr(model, "param_counts", None) or param_counts(model)
        row = {"label": label, "model": ref, "kind": kind, "device": str(dev),
               "base": base_of(ref), **counts,
               "size_mb": dir_size_mb(hub.resolve(ref)),
               "flops_per_example": flops_per_example(model, enc, max(batch_sizes), dev)}
        inputs = {bs: timing_inputs(enc, bs, n_batches, dev) for bs in batch_sizes}
        with torch.inference_mode():
            for bs in batch_sizes:  # warm-up: one untimed pass per batch size
                run_batches(model, inputs[bs], dev)
        row["peak_mem_mb"] = peak_rss_mb(baseline)  # weights + activations while warming up
        rows.append(row)
        loaded.append((model, inputs, dev))
    times = [{bs: [] for bs in batch_sizes} for _ in rows]
    rounds = range(repeats)
    if progress:
        rounds = tqdm(rounds, desc="timing rounds", leave=False, dynamic_ncols=True)
    with torch.inference_mode():
        for _ in rounds:
            for bs in batch_sizes:
                for (model, inputs, dev), t in zip(loaded, times):
                    t[bs] += run_batches(model, inputs[bs], dev)
    for row, t in zip(rows, times):
        for bs in batch_sizes:
            row[f"batch{bs}"] = latency_stats(t[bs], bs)
    del loaded
    ref = rows[0]
    by_path = {str(Path(hub.resolve(r["model"])).resolve()): r for r in rows}
    for r in rows:
        r["compression"] = round(ref["params"] / r["params"], 2)
        r["compression_no_emb"] = round(ref["params_no_emb"] / max(r["params_no_emb"], 1), 2)
        for bs in batch_sizes:
            r[f"batch{bs}"]["speedup"] = round(ref[f"batch{bs}"]["p50_ms"] /
                                               r[f"batch{bs}"]["p50_ms"], 2)
        base = by_path.get(r["base"]) if r["base"] else None
        if base is not None:
            bs = max(batch_sizes)
            r["base_label"] = base["label"]
            r["speedup_vs_base"] = round(base[f"batch{bs}"]["p50_ms"] /
                                         r[f"batch{bs}"]["p50_ms"], 2)
            r["slower_than_base"] = r["speedup_vs_base"] < 1.0
    m = machine_info()
    return {"task": task, "split": split, "texts": source, "threads": torch.get_num_threads(),
            "device": device, "machine": m, "batch_sizes": list(batch_sizes),
            "repeats": repeats, "models": rows}


def table(result: dict) -> str:
    """Markdown table of a :func:`bench` result, with the machine line and a warning for every
    variant slower than its FP32 base."""
    from .hardware import machine_line

    bss = result["batch_sizes"]
    head = ["model", "params", "params w/o emb"] + [
        h for bs in bss for h in (f"p50 ms @{bs}", f"speedup @{bs}")] + [
        "ex/s @" + str(bss[-1]), "peak MB", "vs FP32 base"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for r in result["models"]:
        cells = [r["label"], f"{r['params'] / 1e6:.1f}M", f"{r['params_no_emb'] / 1e6:.2f}M"]
        for bs in bss:
            cells += [f"{r[f'batch{bs}']['p50_ms']:.1f}", f"{r[f'batch{bs}']['speedup']:.2f}×"]
        cells.append(f"{r[f'batch{bss[-1]}']['throughput']:.0f}")
        cells.append(str(r.get("peak_mem_mb")))
        vs = r.get("speedup_vs_base")
        if vs is None:
            cells.append("—")
        elif r.get("slower_than_base"):
            cells.append(f"**{vs:.2f}× SLOWER than {r['base_label']}**")
            notes.append(f"WARNING: {r['label']} ({r['kind']}) is slower than its FP32 base "
                         f"{r['base_label']} on this machine: deploy the faster one "
                         "(`lmdistill quantize --method auto` measures before it picks)")
        else:
            cells.append(f"{vs:.2f}×")
        lines.append("| " + " | ".join(cells) + " |")
    m = result.get("machine")
    foot = []
    if m:
        foot.append(f"machine: {machine_line(m)}; device: {result.get('device', 'cpu')}")
    if result.get("texts"):
        foot.append(f"inputs: {result['texts']}")
    return "\n".join(lines + [""] * bool(foot + notes) + foot + notes)
