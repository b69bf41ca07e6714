"""BENCHMARKS.md sections: fine-tuning, distillation, multi-teacher KD, compression, speed, bf16, devices and the CUDA tests."""

from __future__ import annotations

import statistics
from collections import defaultdict

from render_common import device_of, machine_line


def finetune_section(res: dict) -> list[str]:
    rows = [r for k, r in res.items() if k.startswith("finetune_")]
    if not rows:
        return []
    out = ["## Fine-tuning (teachers)", "",
           "| model | task | train rows | epochs | dev metric | device | train throughput "
           "(ex/s) | training time (s) | wall time (s) | command |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        metric = next(k for k in ("accuracy", "f1", "mcc", "pearson") if k in r)
        extra = f", F1 {r['f1']:.4f}" if metric == "accuracy" and "f1" in r else ""
        out.append(f"| {r['model']} | {r['task']} | {r['train_examples']} | {r['epochs']} | "
                   f"{metric} {r[metric]:.4f}{extra} | {device_of(r)} | "
                   f"{r.get('train_examples_per_s', '')} | "
                   f"{r.get('train_seconds', '')} | {r.get('wall_seconds', '')} | "
                   f"`{r['command']}` |")
    out += ["", f"Machine: {machine_line(rows[0])}. Training throughput counts only time inside "
            "training steps; wall time includes loading, tokenisation and evaluation. Runs that "
            "shared the 2 cores with other benchmark processes are slower than a quiet machine "
            "would be.", ""]
    return out


def distill_section(res: dict) -> list[str]:
    by_task = defaultdict(list)
    for k, r in res.items():
        if k.startswith("distill_"):
            by_task[r["task"]].append(r)
    out = []
    for task, rows in by_task.items():
        t = rows[0]["teacher_metrics"]
        p = rows[0]["primary"]
        speed = res.get(f"speed_{task}", {})
        sp = {m["label"]: m for m in speed.get("models", [])}
        tp = sp.get("teacher", {}).get("params")
        out += [f"## Distillation on {task} (dev)", "",
                f"Teacher: {rows[0]['teacher']} — dev {p} {t[p]:.4f}"
                + (f", {tp / 1e6:.1f}M parameters" if tp else ""), "",
                f"| student | {p} | retention | params | params w/o emb | speedup b=1 | "
                "speedup b=32 | train ex/s | command |", "|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(rows, key=lambda r: r["row"]):
            s = sp.get(r["row"], {})
            sp1 = s.get("batch1", {}).get("speedup")
            sp32 = s.get("batch32", {}).get("speedup")
            out.append(
                f"| {r['row']} | {r['metrics'][p]:.4f} | {100 * r['retention']:.1f}% | "
                f"{r['params'] / 1e6:.2f}M | {r['params_no_emb'] / 1e6:.2f}M | "
                f"{f'{sp1:.2f}×' if sp1 else '—'} | {f'{sp32:.2f}×' if sp32 else '—'} | "
                f"{r['train'].get('train_examples_per_s', '')} | `{r['command']}` |")
        if speed:
            out += ["", f"Speedups: `{speed['command']}` ({speed['threads']} threads, "
                    f"p50 latency over ≥{speed['repeats']}×4 batches of real dev sentences, all "
                    "models timed in one run)."]
        out += ["", f"Machine: {machine_line(rows[0])}."]
        out.append("")
    return out


def multiteacher_section(res: dict) -> list[str]:
    rows = defaultdict(list)
    for k, r in res.items():
        if k.startswith("multiteacher_"):
            rows[r["row"]].append(r)
    if not rows:
        return []
    any_r = next(iter(rows.values()))[0]
    ta = any_r["teacher_accuracy"]
    out = ["## Multi-teacher KD on SST-2 (prediction weighting)", "",
           "Teachers: " + ", ".join(f"{k} (dev accuracy {v:.4f})" for k, v in ta.items()) +
           f". Student: 3-layer subset of the first; logit KD on {any_r['limit']} SST-2 rows, "
           f"{any_r['epochs']} epoch; dev accuracy, mean ± stdev over seeds.", "",
           "| teachers / weighting | mean acc | stdev | seeds | per seed | acc at first eval "
           "(mean) | command |", "|---|---|---|---|---|---|---|"]
    ranked = sorted(rows.items(), key=lambda kv: -statistics.mean(r["accuracy"] for r in kv[1]))
    for name, rs in ranked:
        accs = [r["accuracy"] for r in sorted(rs, key=lambda r: r["seed"])]
        first = [r["curve"][0][1] for r in rs if r.get("curve")]
        cmd = rs[0]["command"].rsplit(" --seeds", 1)[0] + f" --only {name}"
        out.append(f"| {name} | {statistics.mean(accs):.4f} | "
                   f"{statistics.stdev(accs) if len(accs) > 1 else 0:.4f} | {len(accs)} | "
                   f"{', '.join(f'{a:.4f}' for a in accs)} | "
                   f"{statistics.mean(first):.4f} | `{cmd}` |")
    out += ["", f"Machine: {machine_line(any_r)}.", ""]
    return out


def compress_section(res: dict) -> list[str]:
    r = res.get("compress_sst2")
    if not r:
        return []
    ms = r["models"]
    t_acc = ms[0].get("accuracy")
    out = ["## Compression and runtimes on SST-2 (dev)", "",
           f"Machine: **{machine_line(r)}**.", "",
           f"Teacher `{r.get('teacher_dir', ms[0]['model'])}`, student "
           f"`{r.get('student_dir', ms[1]['model'])}`.", "",
           f"All models timed side by side in one run on the same real dev sentences, "
           f"{r['threads']} threads, p50 over ≥{r['repeats']}×4 batches after warm-up; speedup "
           "against the fine-tuned teacher (first row). Quantized torch folders store FP32 "
           "weights plus the quantization recipe (applied on load), so their size on disk is "
           "the FP32 size.", "",
           "| model | runtime | dev acc | retention | params | p50 ms b=1 | speedup b=1 | "
           "p50 ms b=32 | speedup b=32 | ex/s b=32 | vs FP32 base b=32 | size MB | peak MB | "
           "GFLOPs/ex |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in ms:
        acc = m.get("accuracy")
        fl = m.get("flops_per_example")
        vs = m.get("speedup_vs_base")
        vs = "—" if vs is None else (f"**{vs:.2f}× (slower)**" if m.get("slower_than_base")
                                     else f"{vs:.2f}×")
        kind = m["kind"] + (" (auto's choice)" if m.get("chosen_backend") else "")
        out.append(
            f"| {m['label']} | {kind} | {f'{acc:.4f}' if acc else '—'} | "
            f"{f'{100 * acc / t_acc:.1f}%' if acc and t_acc else '—'} | "
            f"{m['params'] / 1e6:.1f}M | {m['batch1']['p50_ms']:.1f} | "
            f"{m['batch1']['speedup']:.2f}× | {m['batch32']['p50_ms']:.1f} | "
            f"{m['batch32']['speedup']:.2f}× | {m['batch32']['throughput']:.0f} | {vs} | "
            f"{m['size_mb']} | {m.get('peak_mem_mb', '—')} | "
            f"{f'{fl / 1e9:.2f}' if fl else '—'} |")
    ac = r.get("auto_choice")
    if ac:
        fmt = lambda x: "not evaluated (slower than FP32)" if x is None else f"{x:.4f}"  # noqa
        tried = "; ".join(f"{k}: {v.get('latency_ms'):.1f} ms, acc {fmt(v.get('metric'))}"
                          if not v.get("error") else f"{k}: {v['error']}"
                          for k, v in ac["measurements"].items())
        out += ["", f"`quantize --method auto` on this machine chose **{ac['method']}** "
                f"({ac['speedup']:.2f}× the FP32 student at b=32 while choosing). Measured "
                f"while choosing (b=32 p50, dev accuracy): {tried}."]
    out += ["", f"Command: `{r['command']}`", ""]
    return out


def devices_section(res: dict) -> list[str]:
    """Same finetune/distill commands timed on the CPU and on a CUDA GPU, each row naming its
    device; a GPU row only exists where a result recorded a GPU."""
    rows = [r for k, r in res.items() if k.startswith("device_")]
    out = ["## CPU and CUDA GPU", ""]
    if not rows:
        out += ["No CUDA GPU was available to this project's sessions so far, so no GPU "
                "figure is claimed (the CUDA tests' status is under \"CUDA tests\"). Every "
                "figure on this page is from the CPU named in its section.", ""]
        return out
    out += ["| command | device | ex/s | dev metric | machine |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| `{r['command']}` | {device_of(r)} | {r['train_examples_per_s']} | "
                   f"{r['metric']} | {machine_line(r)} |")
    return out + [""]


def cuda_tests_section(res: dict) -> list[str]:
    """The CUDA tests' status (``benchmarks/cuda_tests.py``): the GPU and each test's outcome,
    or that they did not run for want of a GPU."""
    r = res.get("cuda_tests_gpu") or res.get("cuda_tests_nogpu")
    if r is None:
        return []
    out = ["## CUDA tests", "",
           "`tests/e2e/test_cuda.py` runs every command on a CUDA GPU (finetune, evaluate, "
           "distill with cached, file and online teachers and a resume, search, metakd, l2a, "
           "masked-LM distillation, CBERT augmentation, wsd, bench and quantize), each "
           "checking where the student and its teachers ran. CI has no GPU.", ""]
    if "gpu" not in r:
        out += [f"Status: {r['status']} (checked {r['date']} on {machine_line(r)}; "
                f"`{r['command']}`).", ""]
        return out
    out += [f"Status on {r['gpu']} ({r['date']}): **{r['status']}**, {r['seconds']:.0f} s "
            f"(`{r['command']}`).", "", "| test | outcome |", "|---|---|"]
    out += [f"| `{k}` | {v} |" for k, v in sorted(r["tests"].items())]
    return out + [""]


def speed_section(res: dict) -> list[str]:
    out = []
    for k, r in res.items():
        if k.startswith("epochcost_"):
            out += ["## Cost of a KD epoch with a cached teacher", "",
                    f"Same student, same data ({r['examples']} SST-2 rows), one process, "
                    f"back to back: plain fine-tuning {r['finetune_ex_s']} ex/s, logit KD from a "
                    f"cached teacher {r['kd_ex_s']} ex/s, logit KD with the teacher run online "
                    f"{r['online_ex_s']} ex/s. KD epoch / plain epoch = "
                    f"**{r['ratio_cached']:.3f}×** (cached), {r['ratio_online']:.3f}× (online). "
                    f"Command: `{r['command']}`. Machine: {machine_line(r)}.", ""]
    return out


def bf16_isa(r: dict) -> str:
    isa = [x for x in (r.get("machine", {}).get("cpu") or {}).get("isa", []) if "BF16" in x]
    return ", ".join(isa) or "none (no bf16 arithmetic)"


def bf16_section(res: dict) -> list[str]:
    """fp32 vs bf16 training on the CPU (benchmarks/bf16.py): ex/s of our loop beside a plain
    HF loop, what ``mixed_precision=auto`` chose, and SST-2 dev accuracy of both precisions."""
    speed = [r for k, r in res.items() if k.startswith("bf16_speed_")]
    acc = [r for k, r in res.items() if k.startswith("bf16_accuracy_")]
    if not speed and not acc:
        return []
    out = ["## bf16 vs fp32 training on the CPU", ""]
    for r in speed:
        out += [f"`{r['model']}`, batch {r['batch']} × {r['length']} tokens, {r['threads']} "
                "thread(s), one process, medians of per-step times (a step: forward, "
                "backward, clipping, AdamW). lmdistill's loop: `Trainer.fit` runs of "
                f"{r['our_loop'].get('steps_per_fit', '?')} steps, fp32 and bf16 alternating "
                "(first step of each run not timed); plain HF loop: fp32 and bf16 steps "
                "alternating after a warm-up step of each.", "",
                "| loop | fp32 ex/s | bf16 ex/s | bf16 / fp32 | steps timed (each) |",
                "|---|---|---|---|---|"]
        for key, name in (("our_loop", "lmdistill `Trainer`"),
                          ("hf_loop", "plain HF loop (torch.autocast)")):
            x = r[key]
            out.append(f"| {name} | {x['fp32_ex_per_s']} | {x['bf16_ex_per_s']} | "
                       f"**{x['speedup']:.2f}×** | {len(x['fp32_step_s'])} |")
        p = r["auto"].get("precision") or {}
        chosen = "bf16" if r["auto"]["mixed_precision"] == "bf16" else "fp32"
        if "speedup" in p:
            out += ["", f"`train.mixed_precision=auto` at start-up of the same run chose "
                    f"**{chosen}**: its probe timed fp32 {p['fp32_step_s']:.2f} s and bf16 "
                    f"{p['bf16_step_s']:.2f} s a step ({p['speedup']:.2f}×, bf16 needs "
                    f"≥ {p['min_speedup']}×; {p['pairs']} timed pairs after a warm-up step "
                    f"of each, {p['probe_s']:.0f} s in all)."]
        else:
            out += ["", f"`train.mixed_precision=auto` chose **{chosen}** "
                        f"({p.get('reason', 'no probe')})."]
        out += ["", f"Machine: {machine_line(r)}; bf16 ISA: {bf16_isa(r)}. "
                f"Command: `{r['command']}`.", ""]
    for r in acc:
        out += [f"SST-2 dev accuracy ({r['eval_rows']} rows, evaluated in fp32) after "
                f"training in fp32 (`train.mixed_precision=no`) and in bf16: a teacher "
                f"fine-tuned from `{r['model']}` and a student distilled from it "
                f"({r['student_recipe']}; the bf16 student from the bf16 teacher), "
                f"{r['limit']} train rows, {r['epochs']:g} epochs, {r['threads']} thread(s), "
                f"best dev evaluation of each run; one dev row is "
                f"{100 / r['eval_rows']:.2f} points.", "",
                "| model | seed | fp32 | bf16 | bf16 − fp32 (points) |", "|---|---|---|---|---|"]
        for role in ("teacher", "student"):
            for seed in r["seeds"]:
                a = {x["precision"]: x[role]["accuracy"] for x in r["runs"]
                     if x["seed"] == seed}
                if "fp32" in a and "bf16" in a:
                    out.append(f"| {role} | {seed} | {a['fp32']:.4f} | {a['bf16']:.4f} | "
                               f"{100 * (a['bf16'] - a['fp32']):+.2f} |")
            m = r.get(role)
            if m:
                ok = abs(m["bf16_minus_fp32_points"]) <= 0.5
                out.append(f"| {role}: mean of {m['seeds_paired']} | | {m['fp32_mean']:.4f} | "
                           f"{m['bf16_mean']:.4f} | **{m['bf16_minus_fp32_points']:+.2f}** "
                           f"({'within' if ok else 'not within'} 0.5) |")
        out += ["", f"Machine: {machine_line(r)}; bf16 ISA: {bf16_isa(r)}. "
                f"Command: `{r['command']}`.", ""]
    return out
