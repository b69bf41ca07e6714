"""``make demo``: the main job, end to end on real data and real pretrained weights.

1. fine-tune the ``minilm-l6`` teacher (all-MiniLM-L6-v2, 6 layers) on a seeded SST-2 subset;
2. distil it into a 3-layer student (teacher layers [1, 3, 5]) with logit + hidden-state KD,
   the teacher's outputs cached on disk;
3. quantize the student with ``--method auto``: every INT8 backend (and BF16) that works on
   this machine is timed against the FP32 student, and the fastest within 1 accuracy point is kept
   (which one wins depends on the CPU's ISA: AVX2 / AVX-512 VNNI / AMX);
4. evaluate all three on the full SST-2 dev set and time them side by side on the CPU;
5. print accuracy, retention, parameters, latency and speedup, all measured in this run, and
   write the HTML/Markdown report (training curves, accuracy vs latency).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import api
from . import config as C
from .bench import bench


def run(data_dir: str | None = None, out: str = "runs/demo", train_limit: int = 4000,
        epochs: float = 1.0, student_layers: int = 3, resume: bool = False) -> dict:
    t0 = time.time()
    out_p = Path(out)
    teacher_dir, student_dir = out_p / "teacher", out_p / "student"
    common = {"data.task": "sst2", "data.data_dir": data_dir, "data.limit": train_limit,
              "train.epochs": epochs, "train.batch_size": 32, "train.eval_every": 50}
    print(f"[demo 1/3] fine-tuning the minilm-l6 teacher on {train_limit} SST-2 examples")
    ft = api.finetune(C.build(C.FinetuneConfig, overrides={
        **common, "output_dir": str(teacher_dir), "model.name": "minilm-l6",
        "train.lr": 1e-4}), resume=resume)


    print(f"[demo 2/3] distilling it into a {student_layers}-layer student "
          "(logit + hidden-state KD, cached teacher)")
    ds = api.distill(C.build(C.DistillConfig, overrides={
        **common, "output_dir": str(student_dir), "teacher.name": str(teacher_dir / "model"),
        "teacher.cache_dir": str(out_p / "teacher-cache"), "student.kind": "subset",
        "student.num_layers": student_layers, "kd.features": ["hidden"], "kd.alpha": 0.9,
        "kd.temperature": 2.0, "train.lr": 1e-4, "train.epochs": 2 * epochs,
        # the demo's fixed short schedule (distill's default runs until it stops improving)
        "train.early_stopping_patience": None, "train.eval_each_epoch": False}), resume=resume)

    from .compress.quantize import QuantizationRefused, quantize
    from .hardware import machine_info, machine_line

    print(f"[demo 3/3] INT8/BF16 student for this machine ({machine_line(machine_info())}): "
          "timing every INT8 and BF16 backend against the FP32 student")
    int8_dir = out_p / "student-int8"
    try:
        q = quantize(student_dir / "model", int8_dir, "auto", task="sst2", split="dev",
                     data_dir=data_dir, log=print)
    except QuantizationRefused as e:  # keep the FP32 student; say so instead of a slower INT8
        print(f"[demo] {e}")
        q, int8_dir = None, None
    models = {"teacher": str(teacher_dir / "model"), "student": str(student_dir / "model")}
    if int8_dir is not None:
        models[f"student-int8 ({q['method']})"] = str(int8_dir)
    evs = []
    for i, (label, ref) in enumerate(models.items(), 1):
        print(f"[demo] evaluating {label} on the full SST-2 dev set ({i}/{len(models)})")
        evs.append(api.evaluate(ref, "sst2", "dev", data_dir, progress=True))
    print(f"[demo] timing {', '.join(models)} side by side (batch 1 and 32)")
    b = bench(models, "sst2", "dev", (1, 32), data_dir, repeats=5, progress=True)
    for row, ev in zip(b["models"], evs):
        row["accuracy"] = ev["accuracy"]
    ev_t, ev_s = evs[0], evs[1]
    ev_q = evs[2] if int8_dir is not None else None
    api.write_json(out_p / "bench.json", b)
    bt, bs = b["models"][:2]
    bq = b["models"][2] if ev_q is not None else None
    summary = {
        "teacher": {"accuracy": ev_t["accuracy"], "params": bt["params"],
                    "latency_ms_b32": bt["batch32"]["p50_ms"],
                    "latency_ms_b1": bt["batch1"]["p50_ms"]},
        "student": {"accuracy": ev_s["accuracy"], "params": bs["params"],
                    "params_no_emb": bs["params_no_emb"],
                    "latency_ms_b32": bs["batch32"]["p50_ms"],
                    "latency_ms_b1": bs["batch1"]["p50_ms"]},
        "student_int8": None if bq is None else {
            "accuracy": ev_q["accuracy"], "backend": q["method"],
            "latency_ms_b32": bq["batch32"]["p50_ms"], "latency_ms_b1": bq["batch1"]["p50_ms"],
            "speedup_b32": bq["batch32"]["speedup"], "speedup_b1": bq["batch1"]["speedup"],
            "speedup_vs_fp32_student_b32": bq.get("speedup_vs_base"),
            "candidates": {k: {kk: v.get(kk) for kk in ("latency_ms", "metric", "error")}
                           for k, v in q["measurements"].items()}},
        "machine": b["machine"],
        "retention": ev_s["accuracy"] / ev_t["accuracy"],
        "speedup_b32": bs["batch32"]["speedup"], "speedup_b1": bs["batch1"]["speedup"],
        "threads": b["threads"], "finetune": ft, "distill": ds,
        "demo_seconds": round(time.time() - t0, 1),
    }
    from .report.build import write_report

    rep = write_report([teacher_dir, student_dir], out_p / "report", bench_json=out_p / "bench.json",
                       title="lmdistill demo: SST-2, minilm-l6 teacher -> 3-layer student")
    summary["report"] = {k: str(v) for k, v in rep.items() if k in ("html", "markdown")}
    api.write_json(out_p / "demo.json", summary)
    print(render(summary))
    print(f"report: {rep['html']}")
    return summary


def _kind(backend: str) -> str:
    """What a quantize backend makes of the weights, for the table: INT8 or BF16."""
    return "BF16" if backend == "bf16" else "INT8"


def render(s: dict) -> str:
    from .hardware import machine_line

    t, st, q = s["teacher"], s["student"], s["student_int8"]
    ta = t["accuracy"]
    cols = ["", "teacher (minilm-l6)", "student"] + (
        [f"student {_kind(q['backend'])} ({q['backend']})"] if q else [])
    rows = [
        cols,
        ["SST-2 dev accuracy", f"{ta:.4f}", f"{st['accuracy']:.4f}"]
        + ([f"{q['accuracy']:.4f}"] if q else []),
        ["retention", "100.0%", f"{100 * s['retention']:.1f}%"]
        + ([f"{100 * q['accuracy'] / ta:.1f}%"] if q else []),
        ["parameters", f"{t['params'] / 1e6:.1f}M", f"{st['params'] / 1e6:.1f}M "
         f"({st['params_no_emb'] / 1e6:.2f}M w/o emb)"]
        + ([f"same, {_kind(q['backend']).lower()} weights"] if q else []),
        [f"latency b=1 ({s['threads']} threads)", f"{t['latency_ms_b1']:.1f} ms",
         f"{st['latency_ms_b1']:.1f} ms ({s['speedup_b1']:.2f}× faster)"]
        + ([f"{q['latency_ms_b1']:.1f} ms ({q['speedup_b1']:.2f}×)"] if q else []),
        ["latency b=32", f"{t['latency_ms_b32']:.1f} ms",
         f"{st['latency_ms_b32']:.1f} ms ({s['speedup_b32']:.2f}× faster)"]
        + ([f"{q['latency_ms_b32']:.1f} ms ({q['speedup_b32']:.2f}×)"] if q else []),
    ]
    w = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in rows]
    if q:
        vs = q.get("speedup_vs_fp32_student_b32")
        tried = ", ".join(f"{k} {v['latency_ms']:.1f} ms" if v.get("latency_ms") else
                          f"{k} ({v.get('error') or 'n/a'})"
                          for k, v in q["candidates"].items())
        lines.append(f"\n{_kind(q['backend'])} backend chosen for this CPU: {q['backend']}"
                     + (f" ({vs:.2f}× the FP32 student at b=32 in the table's timing)"
                        if vs else "") + f"; timed at b=32 while choosing: {tried}")
        if vs is not None and vs < 1:
            lines.append("WARNING: in this final timing the quantized student was slower than the "
                         "FP32 student (machine noise or a busy CPU); see demo.json")
    else:
        lines.append("\nno INT8/BF16 backend was faster than the FP32 student on this CPU: kept FP32")
    return ("\n" + "\n".join(lines) + f"\n\nmachine: {machine_line(s['machine'])}"
            f"\nall measured in this run ({s['demo_seconds']} s); details in demo.json\n")


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
