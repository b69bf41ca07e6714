"""Render BENCHMARKS.md from benchmarks/results/*.json (every figure comes from a file, every
row names the command that produced it).

    .venv/bin/python benchmarks/render.py
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
OUT = HERE.parent / "BENCHMARKS.md"


def load() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}


def machine_line(r: dict) -> str:
    """The machine a result came from: CPU model + ISA + threads (+ GPU) where the result
    recorded them (since issue 7), else the cores and threads it did record."""
    m = r.get("machine", {})
    if m.get("cpu"):
        from lmdistill.hardware import machine_line as line

        return f"{line(m)}, Python {m.get('python')}"
    return (f"{m.get('cpu_count')} CPU cores, torch {m.get('torch')} "
            f"({m.get('torch_threads')} threads), Python {m.get('python')}; CPU model and ISA "
            "not recorded (measured before issue 7)")


def machines_line(rows: list[dict]) -> str:
    """``Machine: …`` for a section's rows, or ``Machines: … (N rows); …`` when they came from
    several (the CPUs differ between this project's machines, e.g. with and without AMX)."""
    counts: dict[str, int] = {}
    for r in rows:
        line = machine_line(r)
        counts[line] = counts.get(line, 0) + 1
    if len(counts) == 1:
        return f"Machine: {next(iter(counts))}."
    return "Machines: " + "; ".join(f"{m} ({n} rows)" for m, n in counts.items()) + "."


def device_of(r: dict) -> str:
    g = r.get("machine", {}).get("gpu")
    return f"GPU {g['name']}" if g and r.get("device", "cpu").startswith("cuda") else "CPU"


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


def mlm_section(res: dict) -> list[str]:
    """MLM teachers and the multi-teacher MLM study (issue 10)."""
    out = []
    teachers = [r for k, r in res.items() if k.startswith("mlm_teacher_")]
    if teachers:
        out += ["## Masked-LM teachers (WikiText-2, held-out blocks)", "",
                "| teacher | base | trained | epochs | held-out masked-token accuracy | "
                "held-out MLM loss | masked tokens | train ex/s | command |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in teachers:
            out.append(f"| {r['row']} | {r['base']} | "
                       f"{'head only (encoder frozen)' if r['freeze_encoder'] else 'whole model'}"
                       f" | {r['epochs']} | {r['mlm_accuracy']:.4f} | {r['mlm_loss']:.3f} | "
                       f"{r['masked_tokens']} | {r['train_examples_per_s']} | "
                       f"`{r['command']}` |")
        out += ["", f"Machine: {machine_line(teachers[0])}. Blocks of {teachers[0]['block']} "
                "tokens; the held-out blocks are chosen by a hash of their text, masks fixed.",
                ""]
    rows = defaultdict(list)
    for k, r in res.items():
        if k.startswith("mlmstudy_"):
            rows[r["row"]].append(r)
    if not rows:
        return out
    singles = {n: rs for n, rs in rows.items() if n.startswith("single-")}

    def mean_curve(rs):
        steps = [c[0] for c in rs[0]["curve"]]
        return steps, [statistics.mean(r["curve"][i][1] for r in rs) for i in range(len(steps))]

    def steps_to(rs, acc):
        steps, accs = mean_curve(rs)
        return next((s for s, x in zip(steps, accs) if x >= acc), None)

    best_single = max(singles.items(), key=lambda kv: statistics.mean(
        r["final_accuracy"] for r in kv[1]), default=None)
    target = statistics.mean(r["final_accuracy"] for r in best_single[1]) if best_single else None
    any_r = next(iter(rows.values()))[0]
    out += ["## Multi-teacher masked-LM distillation (prediction weighting)", "",
            f"Same 2-layer student, data and {any_r['steps']} steps for every row; held-out "
            "masked-token accuracy, mean ± stdev over seeds; \"steps to X\" reads the "
            "mean curve (evaluated every 10 steps)"
            + (f"; X = {target:.4f}, the best single teacher's ({best_single[0]}) final "
               "accuracy" if target else "") + ".", "",
            "| row | final acc (mean ± std) | seeds | final MLM loss | steps to X | "
            "per seed | command |", "|---|---|---|---|---|---|---|"]
    for name, rs in sorted(rows.items(), key=lambda kv: -statistics.mean(
            r["final_accuracy"] for r in kv[1])):
        accs = [r["final_accuracy"] for r in sorted(rs, key=lambda r: r["seed"])]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        st = steps_to(rs, target) if target else None
        cmd = rs[0]["command"].rsplit(" --seeds", 1)[0]
        out.append(f"| {name} | {statistics.mean(accs):.4f} ± {sd:.4f} | {len(accs)} | "
                   f"{statistics.mean(r['final_loss'] for r in rs):.3f} | "
                   f"{st if st is not None else 'not reached'} | "
                   f"{', '.join(f'{x:.4f}' for x in accs)} | `{cmd} --seeds "
                   f"{' '.join(str(r['seed']) for r in sorted(rs, key=lambda r: r['seed']))}"
                   f" --steps {rs[0]['steps']}` |")
    weighted = {n: rs for n, rs in rows.items()
                if n in ("confidence", "entropy", "gold", "gold-sharp4")}
    if target and weighted and "uniform" in rows:
        best_w = max(weighted.items(), key=lambda kv: statistics.mean(
            r["final_accuracy"] for r in kv[1]))
        st_w, st_s = steps_to(best_w[1], target), steps_to(best_single[1], target)
        uni = statistics.mean(r["final_accuracy"] for r in rows["uniform"])
        wf = statistics.mean(r["final_accuracy"] for r in best_w[1])
        ok = st_w is not None and st_s is not None and st_w <= 0.6 * st_s and wf > uni
        out += ["", f"Target (best weighted mixture reaches the best single teacher's final "
                f"accuracy in ≤ 60% of its steps and ends above the uniform mixture): best "
                f"weighted = {best_w[0]} ({wf:.4f}), reaches X at step "
                f"{st_w if st_w is not None else 'never'} vs {st_s} for {best_single[0]}; "
                f"uniform ends at {uni:.4f}: **{'met' if ok else 'not met'}**."]
    out += ["", f"Machine: {machine_line(any_r)}.", ""]
    return out


def mlm_downstream_section(res: dict) -> list[str]:
    """The masked-LM students fine-tuned on SST-2 / MRPC / RTE (issue 10, last step)."""
    rows = [r for k, r in res.items() if k.startswith("mlmdown_")]
    if not rows:
        return []
    tasks = [t for t in ("sst2", "mrpc", "rte") if any(r["task"] == t for r in rows)]
    students = []
    for r in rows:
        if r["student"] not in students:
            students.append(r["student"])
    by = {(r["task"], r["student"]): r for r in rows}

    def metric(r):
        return (f"F1 {r['f1']:.4f} (acc {r['accuracy']:.4f})" if r["task"] == "mrpc"
                else f"{r['accuracy']:.4f}")

    out = ["## Masked-LM students fine-tuned on GLUE tasks", "",
           "The 2-layer students of the MLM study (study seed 1), their MLM head dropped, "
           "fine-tuned with a fresh classifier: same rows, steps, lr (1e-4) and seed for every "
           "row of a task (SST-2: a seeded 8,000-row subset, 1 epoch; MRPC 3 epochs; RTE 2 "
           "epochs; dev is full). `init` is the same student before any MLM training.", "",
           "| student | " + " | ".join(tasks) + " | command |",
           "|---|" + "---|" * len(tasks) + "---|"]
    for st in students:
        cells = [metric(by[(t, st)]) if (t, st) in by else "—" for t in tasks]
        cmd = next(by[(t, st)]["command"] for t in tasks if (t, st) in by)
        cmd = cmd.rsplit(" --tasks", 1)[0] + " --tasks " + " ".join(
            t for t in tasks if (t, st) in by) + " --threads 1"
        out.append(f"| {st} | " + " | ".join(cells) + f" | `{cmd}` |")
    out += ["", f"Machine: {machine_line(rows[0])}.", ""]
    return out


def adabert_sst2_target(res: dict) -> tuple[bool, str, list] | None:
    """Issue 11's SST-2 target over the timed students: (met, one entry per student, the
    timed students as (row, retention, b=32 speedup))."""
    rows = [r for k, r in res.items() if k.startswith("adabert_sst2_")]
    sp = {m["label"]: m for m in res.get("adabertspeed_sst2", {}).get("models", [])}
    cands = [(r, sp[f"adabert-{r['row']}"]) for r in rows if f"adabert-{r['row']}" in sp]
    if not cands:
        return None
    ok = any(r["retention"] >= 0.95 and m["batch32"]["speedup"] >= 8 for r, m in cands)
    untimed = [r for r in rows if f"adabert-{r['row']}" not in sp
               and not r["row"].startswith("arch-")]
    timed = [(r["row"], r["retention"], m["batch32"]["speedup"]) for r, m in cands]
    return ok, "; ".join([f"{r['row']}: {100 * r['retention']:.1f}% at "
                          f"{m['batch32']['speedup']:.1f}×" for r, m in cands]
                         + [f"{r['row']}: {100 * r['retention']:.1f}% (speed not timed)"
                            for r in untimed]), timed


def adabert_section(res: dict) -> list[str]:
    """AdaBERT searched students (issue 11): metric, retention, parameters, CPU speedups next to
    the distillation-core students; the task-adaptivity matrix; the ablations."""
    rows = {k[len("adabert_"):]: r for k, r in res.items() if k.startswith("adabert_")}
    if not rows:
        return []
    out = ["## AdaBERT: searched CNN students", ""]
    out += ["| task | student | architecture | dev metric | retention | params (w/o emb) | "
            "speedup b=1 | speedup b=32 | vs BERT-base-sized b=32 | command |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for task in ("sst2", "mrpc", "rte"):
        speed = res.get(f"adabertspeed_{task}", {})
        sp = {m["label"]: m for m in speed.get("models", [])}
        ref = next((m for lab, m in sp.items() if lab.startswith("bert-base")), None)

        def speeds(label):
            m = sp.get(label)
            if not m:
                return "—", "—", "—"
            b1, b32 = m["batch1"]["speedup"], m["batch32"]["speedup"]
            vs = (f"{ref['batch32']['p50_ms'] / m['batch32']['p50_ms']:.1f}×" if ref else "—")
            return f"{b1:.2f}×", f"{b32:.2f}×", vs

        for key, r in sorted(((k, r) for k, r in rows.items() if r["task"] == task
                              and not k.startswith(f"{task}_arch-")), key=lambda kv: kv[0]):
            a = r["architecture"]
            ops = sorted({o for node in a["nodes"] for _, o in node})
            p = r["primary"]
            s1, s32, vs = speeds(f"adabert-{r['row']}")
            label = {"search": "AdaBERT (β=4, the paper's default)",
                     "search-1ep": "AdaBERT (β=4), 1 search epoch, no architecture warm-up",
                     "nokd": "AdaBERT w/o KD (γ=0)",
                     "noeff": "AdaBERT w/o efficiency (β=0)"}.get(
                         r["row"], f"AdaBERT (β={r['row'][4:]})" if r["row"].startswith("beta")
                         and "-retrain-" not in r["row"] else r["row"])
            if r.get("arch_of"):
                label = (f"the {r['arch_of']} architecture, retrained on "
                         f"{r['result']['train_examples']:,} rows")
            cells = f"{a['cells']} cell{'s' if a['cells'] != 1 else ''}"
            out.append(f"| {task} | {label} | {cells}; {', '.join(ops)} | {p} "
                       f"{r['metric']:.4f} | {100 * r['retention']:.1f}% | "
                       f"{r['params'] / 1e6:.2f}M ({r['params_no_emb'] / 1e6:.2f}M) | {s1} | "
                       f"{s32} | {vs} | `{r['command']}` |")
        for suffix in ("", "-all"):
            bil = res.get(f"distill_{task}_bilstm-logit{suffix}")
            if not bil:
                continue
            p = bil["primary"]
            s1, s32, vs = speeds("bilstm (timing only)")
            who = "BiLSTM (distillation core)" + (
                f", {bil['train']['train_examples']:,} rows, {bil['epochs']:g} epochs"
                if suffix else "")
            out.append(f"| {task} | {who} | 1-layer BiLSTM | {p} "
                       f"{bil['metrics'][p]:.4f} | {100 * bil['retention']:.1f}% | "
                       f"{bil['params'] / 1e6:.2f}M ({bil['params_no_emb'] / 1e6:.2f}M) | "
                       f"{s1} | {s32} | {vs} | `{bil['command']}` |")
        if speed:
            out.append(f"| {task} | speed command | | | | | | | | `{speed['command']}` |")
    srch = next((r for r in rows.values() if r["row"] == "search"), None)
    if srch:
        t = {r["task"]: r["teacher_metrics"] for r in rows.values()}
        out += ["", "Teachers (fine-tuned all-MiniLM-L6-v2): " + ", ".join(
            f"{k} {v.get('f1', v.get('accuracy')):.4f}" for k, v in t.items()) + ". Speedups "
            "are p50 latency ratios against the teacher (and the BERT-base-sized "
            "all-mpnet-base-v2 reference), all models timed in one run per task on real dev "
            "sentences; the BiLSTM row is timed on a BiLSTM of the same architecture (its "
            "accuracy is the distillation matrix's).", ""]
    target = adabert_sst2_target(res)
    if target:
        ok, desc, timed = target
        both = [r for r, ret, sp in timed if ret >= 0.95 and sp >= 8]
        out += ["", "Target on SST-2 (≥ 8× faster than the teacher at batch 32 and ≥ 95% "
                f"retention): **{'met' if ok else 'not met'}** — {desc}. With the paper's β = 4 "
                "(costs normalised to the costliest op) the search always ends at one cell of "
                "pooling / identity ops: the efficiency gradient is the same sign at every step, "
                "the task gradient is noisy, and Adam on the architecture logits follows the "
                "former. β = 0 finds 3 cells of convolutions; β = 0.2 and 0.5 one cell of "
                "convolutions; β = 0.1 three cells of convolutions again, yet below β = 0.2 "
                "once retrained: on the 20,000-row subset the trade-off moves with β, but no "
                "β tried gives both. Rows `<row>-retrain-all` retrain a searched architecture "
                "on all training rows (`--arch-of <row>`), 3.4× the rows the subset rows and "
                "the subset BiLSTM saw; the BiLSTM row with its row count is their like-for-"
                "like comparison. Students meeting both: "
                + (", ".join(f"`{r}`" for r in both) if both else "none") + "."]
    # task adaptivity: architecture searched on A (rows) retrained and tested on B (columns)
    tasks = [t for t in ("sst2", "mrpc", "rte") if f"{t}_search" in rows]
    if len(tasks) > 1 and any(k.split("_", 1)[1].startswith("arch-") for k in rows):
        out += ["### Task adaptivity (architecture searched on the row's task, retrained from "
                "scratch and tested on the column's task)", "",
                "| searched on \\ tested on | " + " | ".join(tasks) + " |",
                "|---|" + "---|" * len(tasks)]
        for a in tasks:
            cells = []
            for b in tasks:
                r = rows.get(f"{b}_search") if a == b else rows.get(f"{b}_arch-{a}")
                cells.append(f"{r['metric']:.4f}" + (" (own)" if a == b else "")
                             if r else "—")
            out.append(f"| {a} | " + " | ".join(cells) + " |")
        ops = {t: sorted({o for node in rows[f"{t}_search"]["architecture"]["nodes"]
                          for _, o in node}) for t in tasks}
        out += ["", "Searched cells (β = 4): " + "; ".join(
            f"{t}: {rows[f'{t}_search']['architecture']['cells']} cell of "
            f"{', '.join(o)}" for t, o in ops.items()) + ". All three searches end at one "
            "cell of pooling / identity edges, so the rows differ only in how those edges are "
            "wired, and the claim that the diagonal wins cannot show at this β.", "",
            "Commands: `benchmarks/adabert.py --task B --arch-from A` (see each "
            "result's JSON).", ""]
    elif tasks:
        out += ["", "Task adaptivity (architectures retrained across tasks) and the ablation "
                "without KD: not run yet.", ""]
    if srch:
        out += [f"Machine: {machine_line(srch)}. Op latencies for the efficiency loss were timed "
                f"on this machine ({srch['costs']['kind'] if srch.get('costs') else '?'}).", ""]
    return out


METAKD_METHODS = ("metakd", "single", "mixed", "multitask", "nokd", "metakd_noweights")
METAKD_SETTINGS = {"full": "all data", "noindomain": "no in-domain data (the teachers never "
                   "see the target)", "frac0.1": "10% of the target's rows"}


def metakd_paired(correct: dict, method: str, base_of: dict, seeds: list, domains: list,
                  reps: int = 2000) -> tuple[float, float]:
    """95% bootstrap CI of the domain-mean paired difference ``method`` − its best baseline
    (per domain ``base_of[d]``), resampling the reported dev rows within each domain (the
    same rows for both methods and every seed)."""
    import numpy as np

    rng = np.random.default_rng(0)
    diffs = {d: np.array([np.array(correct[method][d][s]) - np.array(correct[base_of[d]][d][s])
                          for s in seeds], dtype=float) for d in domains}  # [seeds, rows]
    boots = np.zeros(reps)
    for d in domains:
        n = diffs[d].shape[1]
        idx = rng.integers(0, n, size=(reps, n))
        boots += diffs[d].mean(0)[idx].mean(1)
    boots /= len(domains)
    return float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def metakd_section(res: dict) -> list[str]:
    """Meta-KD vs its baselines per domain (issue 27's units merged per setting and seed):
    report-half accuracy, mean ± sd over student seeds, paired differences with a bootstrap CI
    over the reported rows, the teachers, the prototype-score spread."""
    units = {k: r for k, r in res.items() if k.startswith("metakd_")}
    if not units:
        return []
    out = ["## Meta-KD on the Amazon domains", "",
           "3-layer students (layers of all-MiniLM-L6-v2) per target domain; teachers "
           "fine-tuned from all-MiniLM-L6-v2. metakd = meta-teacher + meta-distillation; "
           "single = teacher of the target domain only; mixed = teacher on all domains mixed; "
           "multitask = shared encoder with per-domain heads (with no in-domain data: the mean "
           "of the source heads); every teacher distilled with the same two stages (layer "
           "matching 1 epoch, then soft-label KD at τ = 2, 2 epochs, soft targets only as the "
           "paper: the same stage for every teacher, where gold labels would only dilute the "
           "teacher differences measured; nokd is the gold-label reference); nokd = "
           "the same student fine-tuned alone (3 epochs); metakd_noweights = Meta-KD's students "
           "without instance weights. The meta-teacher's domain head (tanh(dense) + dropout, as "
           "the authors) is trained on the batch's domain labels in a new permutation every "
           "step. Teachers 2 epochs, teacher seed 1. Every model is chosen "
           "(best epoch) on a seeded half of each domain's 300 dev rows and reported on the "
           "other 150 (`metakd.select_half`).", ""]
    ml = units.get("metakd_maxlen")
    if ml:
        b = ml["by_max_length"]
        out += [f"Max length: the books teacher (2 epochs, last epoch on all 300 dev rows) "
                f"reaches {b['128']['accuracy_last']:.4f} at 128 tokens "
                f"({b['128']['train_examples_per_s']:.1f} rows/s) and "
                f"{b['64']['accuracy_last']:.4f} at 64 ({b['64']['train_examples_per_s']:.1f} "
                f"rows/s, on the machine shared with other jobs): "
                f"{100 * ml['diff_64_minus_128']:+.2f} points (one run's standard error "
                f"{100 * ml['binomial_se_one_run']:.1f}); the units use "
                f"{64 if ml['use_64'] else 128} tokens. `{ml['command']}`", ""]
    by = defaultdict(list)
    for r in units.values():
        if r.get("setting_name") in METAKD_SETTINGS:
            by[r["setting_name"]].append(r)
    for name, rs in by.items():
        acc = defaultdict(lambda: defaultdict(dict))      # method -> domain -> seed -> acc
        correct = defaultdict(lambda: defaultdict(dict))  # method -> domain -> seed -> rows
        # no-KD uses no teacher: the full-data units' no-KD students serve no-in-domain too
        extra = [r for r in by.get("full", []) if r.get("method") == "nokd"] \
            if name == "noindomain" else []
        for r in rs + extra:
            for m, row in r["per_domain"].items():
                for d, v in row.items():
                    acc[m][d][r["seed"]] = v
                    c = r.get("report_correct", {}).get(
                        "metakd" if m == "metakd_noweights" else m, {}).get(d)
                    if c is not None:
                        correct[m][d][r["seed"]] = c
        methods = [m for m in METAKD_METHODS if m in acc]
        domains = sorted({d for m in methods for d in acc[m]})

        def ms(vals):
            return (f"{statistics.mean(vals):.4f}" + (f" ± {statistics.stdev(vals):.4f}"
                                                      if len(vals) > 1 else "")
                    + f" ({len(vals)})")

        out += [f"### {METAKD_SETTINGS[name]}", "",
                "Accuracy on the reported half (mean ± sd over student seeds, (n seeds)):", "",
                "| method | " + " | ".join(domains) + " | 4-domain mean |",
                "|---|" + "---|" * (len(domains) + 1)]
        for m in methods:
            seeds = sorted(set.intersection(*[set(acc[m][d]) for d in domains])) \
                if all(d in acc[m] for d in domains) and len(domains) == 4 else []
            mean = ms([statistics.mean(acc[m][d][s] for d in domains) for s in seeds]) \
                if seeds else "—"
            out.append(f"| {m} | " + " | ".join(ms(list(acc[m][d].values())) if d in acc[m]
                                                 else "—" for d in domains) + f" | {mean} |")
        bases = [m for m in ("single", "mixed", "multitask", "nokd") if m in acc]
        if "metakd" in acc and bases:
            base_of, lines = {}, []
            for d in domains:
                cands = [m for m in bases if d in acc[m]]
                if d not in acc["metakd"] or not cands:
                    continue
                base_of[d] = max(cands, key=lambda m: statistics.mean(acc[m][d].values()))
                seeds = sorted(set(acc["metakd"][d]) & set(acc[base_of[d]][d]))
                diffs = [100 * (acc["metakd"][d][s] - acc[base_of[d]][d][s]) for s in seeds]
                if diffs:
                    sd = f" ± {statistics.stdev(diffs):.2f}" if len(diffs) > 1 else ""
                    lines.append(f"{d} vs {base_of[d]}: {statistics.mean(diffs):+.2f}{sd} "
                                 f"({len(diffs)})")
            full = len(base_of) == 4
            if lines:
                out += ["", "Meta-KD − best baseline per domain (points, paired by seed): "
                        + "; ".join(lines) + "."]
            seeds = sorted(set.intersection(*[set(correct["metakd"][d]) & set(
                correct[base_of[d]][d]) for d in base_of])) if base_of else []
            if full and seeds:
                diff = statistics.mean(100 * (acc["metakd"][d][s] - acc[base_of[d]][d][s])
                                       for d in base_of for s in seeds)
                lo, hi = metakd_paired(correct, "metakd", base_of, seeds, sorted(base_of))
                out += ["", f"4-domain mean, Meta-KD − best baseline: {diff:+.2f} points, 95% "
                        f"bootstrap CI over the reported rows [{100 * lo:+.2f}, {100 * hi:+.2f}] "
                        f"(seeds {seeds}; the paper's claim: ≥ +1 with all data, more "
                        "without in-domain data)."]
            elif not full:
                out += ["", "Not every domain has Meta-KD and a baseline yet: no 4-domain "
                        "comparison."]
        teachers = {}
        for r in rs:
            for k, v in r.get("teachers_per_domain", {}).items():
                if v:
                    teachers[k] = v
                else:  # a teacher of one target: its figure is that domain's
                    own = sorted({d for row in r["per_domain"].values() for d in row})
                    if r.get("teachers", {}).get(k) is not None and len(own) == 1:
                        teachers[k] = {own[0]: r["teachers"][k]}
        if teachers:
            out += ["", "Teachers on the reported half: " + "; ".join(
                f"{k} " + ", ".join(f"{d} {v:.4f}" for d, v in sorted(t.items()))
                for k, t in sorted(teachers.items())) + "."]
        protos = {k: v for r in rs for k, v in r.get("prototype_scores", {}).items()}
        for k, p in sorted(protos.items()):
            out += ["", f"Prototype scores t of {k}'s training rows: {p['min']:.2f} to "
                    f"{p['max']:.2f}, mean {p['mean']:.2f}, sd {p['sd']:.2f} (the paper's "
                    "BERT-base gives flatter weights)."]
        out += ["", "Units: " + "; ".join(
            f"`{r['unit']}` ({r['unit_wall_seconds'] / 60:.0f} min)"
            for r in sorted(rs, key=lambda r: r["unit"]))
            + ("; nokd: the full-data units' (no teacher, the same students)" if extra else "")
            + f". Machine: {machine_line(rs[0])}.",
            ""]
    return out


def wsd_section(res: dict) -> list[str]:
    rows = {k[4:]: r for k, r in res.items() if k.startswith("wsd_")
            and not k.startswith("wsd_prior_")}
    priors = {k[len("wsd_prior_"):]: r for k, r in res.items() if k.startswith("wsd_prior_")}
    if not rows:
        return []
    sets = ["SE2", "SE3", "SE07", "SE13", "SE15", "ALL"]
    out = ["## Word-sense disambiguation (lexical KD)", "",
           "Official F1 (Raganato et al. scorer) on the evaluation sets; MFS = WordNet's first "
           "sense. Gloss classifiers are trained on SemCor 3.0 pairs (gold + 3 hard negatives "
           "per instance).", "",
           "| model | params | " + " | ".join(sets) + " | command |",
           "|---|---|" + "---|" * len(sets) + "---|"]
    for name in ("mfs", "teacher", "student-kd", "student-direct"):
        r = rows.get(name)
        if not r:
            continue
        key = "mfs" if name == "mfs" else "model"
        cells = [f"{100 * r['sets'][s][key]['f1']:.1f}" if s in r["sets"] else "—"
                 for s in sets]
        p = f"{r['params'] / 1e6:.1f}M" if r["params"] else "—"
        out.append(f"| {name} | {p} | " + " | ".join(cells) + f" | `{r['command']}` |")
    for name in ("teacher", "student-kd", "student-direct"):
        r = priors.get(name)
        if not r:
            continue
        t = r["prior_tuned"]
        cells = [f"{100 * t['sets'][s]['f1']:.1f}" if s in t["sets"] else "—" for s in sets]
        out.append(f"| {name} + sense prior (w = {t['weight']:g}, chosen on SE07) | "
                   f"{r['params'] / 1e6:.1f}M | " + " | ".join(cells) + f" | `{r['command']}` |")
    if priors:
        out += ["", "Sense prior: the model's score s (log-odds of \"gloss\") plus w · log of "
                "the sense's add-one-smoothed WordNet tagged count within the instance; w from "
                "the grid " + ", ".join(f"{w:g}" for w in next(iter(priors.values()))["grid"])
                + ", chosen by SE07 F1 (so SE07, and ALL which contains it, are not held out "
                "for that row)."]
    trained = [r for n, r in rows.items() if n != "mfs"]
    if trained:
        r0 = trained[0]
        out += ["", f"Trained rows: a seeded sample of {r0['instances']:,} of SemCor's "
                "234,136 tagged terms (those with a single candidate sense skipped), 1 epoch, max length 96, on the CPU below (no GPU "
                "was lent); students are 2-layer subsets (teacher layers [2, 5]), KD = logit + "
                "hidden-state KD, α 0.5, τ 2."]
    any_r = trained[0] if trained else next(iter(rows.values()))
    out += ["", f"Machine: {machine_line(any_r)}.", ""]
    return out


LEX_TASKS = ("wic", "mrpc", "rte", "cola", "stsb", "sst2", "cikm")
LEX_METRIC = {"wic": "accuracy", "mrpc": "f1", "rte": "accuracy", "cola": "mcc",
              "stsb": "pearson", "sst2": "accuracy", "cikm": "accuracy"}


def lexical_transfer_section(res: dict) -> list[str]:
    """Lexically trained vs plain students fine-tuned on NLU tasks (issue 13)."""
    rows = [r for k, r in res.items() if k.startswith("lextransfer_")]
    if not rows:
        return []
    students = [s for s in ("plain", "lexical", "lexical-kd") if any(r["student"] == s
                                                                     for r in rows)]
    tasks = [t for t in LEX_TASKS if any(r["task"] == t for r in rows)]
    by: dict = {}
    for r in rows:
        by.setdefault((r["task"], r["student"]), []).append(r)

    def cell(t, st):
        rs = by.get((t, st))
        if not rs:
            return "—"
        v = [r[LEX_METRIC[t]] for r in rs]
        sd = f" ± {statistics.stdev(v):.4f}" if len(v) > 1 else ""
        return f"{statistics.mean(v):.4f}{sd} ({len(v)})"

    out = ["## Lexical training and NLU (transfer)", "",
           "The same 2-layer student shape (teacher layers [2, 5] of all-MiniLM-L6-v2, "
           "15.6M parameters), fine-tuned with a fresh head on each task: `plain` = the layer "
           "subset of the pretrained encoder; `lexical` = the same init after gloss "
           "classification on SemCor (the directly trained WSD student above); `lexical-kd` = "
           "the WSD student distilled from the gloss teacher. Same rows, 3 epochs, lr 1e-4, "
           "batch 32, max length 128 and seed for every student; SST-2 and CIKM use a seeded "
           "8,000-row training subset; dev is full. Metric: WiC/RTE/SST-2/CIKM accuracy, MRPC "
           "F1, CoLA MCC, STS-B Pearson; mean ± stdev (number of seeds).", "",
           "| student | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for st in students:
        out.append(f"| {st} | " + " | ".join(cell(t, st) for t in tasks) + " |")
    cmds = sorted({r["command"] for r in rows})
    out += ["", "Commands: " + "; ".join(f"`{c}`" for c in cmds) + ".", "",
            f"Machine: {machine_line(rows[0])}.", ""]
    return out


KDVS_METRIC = {"sst2": "accuracy", "mrpc": "f1", "cola": "mcc", "stsb": "pearson",
               "rt": "accuracy", "rte": "accuracy"}


KDVS_WHY = (
    "Why plain KD barely moves MRPC's 2-layer students: with or without KD they end at the "
    "majority-class rate of MRPC dev (279 of 408 pairs are paraphrases: 0.684 accuracy, F1 "
    "0.812 for always predicting one), while their training loss falls to about 0.27 — they "
    "memorise the 3,668 training pairs. Soft labels on those same rows, from a teacher "
    "fine-tuned on them, add little beyond the gold labels. More transfer text does: the same "
    "KD with 4 EDA copies of every row (teacher-labelled, no gold labels) at the same step "
    "count is the `KD + eda x4` row (`-o kd.augment=eda` in `distill`). At the same step "
    "count a transfer set with 4 copies per row shows each original row a fifth as often "
    "(SST-2's 8,000 rows: about 0.6 passes instead of 3); on SST-2 it has not beaten plain KD, "
    "so `kd.augment` is not a default yet.")


#: CoLA dev: 721 acceptable (label 1), 322 unacceptable (label 0) sentences
COLA_DEV = (721, 322)


def binary_confusion(acc: float, mcc: float, pos: int, neg: int) -> tuple[int, int, int, int]:
    """(tp, tn, fp, fn) of a binary classifier from its accuracy and MCC on a set of ``pos``
    positives and ``neg`` negatives: the correct count is fixed by the accuracy, and MCC picks
    the split of it between the classes (the closest integer one)."""
    correct = round(acc * (pos + neg))

    def mcc_of(tp: int) -> float:
        tn = correct - tp
        fp, fn = neg - tn, pos - tp
        d = ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) ** 0.5
        return (tp * tn - fp * fn) / d if d else 0.0

    tps = [tp for tp in range(max(0, correct - neg), min(pos, correct) + 1)]
    tp = min(tps, key=lambda t: abs(mcc_of(t) - mcc))
    tn = correct - tp
    return tp, tn, neg - tn, pos - tp


def kdvs_cola_why(by: dict, teachers: dict) -> str:
    """Why KD moves CoLA's MCC the way it does: how many dev sentences each student calls
    unacceptable (the minority class MCC rewards), next to the teacher, from the rows'
    accuracy and MCC."""
    pos, neg = COLA_DEV

    def minority(r: dict) -> int:
        _, tn, _, fn = binary_confusion(r["accuracy"], r["mcc"], pos, neg)
        return tn + fn

    t = teachers.get("cola")
    parts = []
    for k in sorted({k for (task, k, a) in by if task == "cola" and a is False}):
        no, kd = by.get(("cola", k, False), []), by.get(("cola", k, ""), [])
        if not no or not kd:
            continue
        parts.append(f"{k}-layer no-KD {min(map(minority, no))}–{max(map(minority, no))}, "
                     f"KD {min(map(minority, kd))}–{max(map(minority, kd))}")
    no3_rows, kd3_rows = by.get(("cola", 3, False), []), by.get(("cola", 3, ""), [])
    if not parts or not t or not no3_rows or not kd3_rows:
        return ""
    no3 = statistics.mean(r["mcc"] for r in no3_rows)
    agree = [r["teacher_agreement"] for r in kd3_rows if "teacher_agreement" in r] or [0.0]
    return ("Why KD loses MCC on CoLA's 3-layer students while it gains accuracy: the KD "
            "students copy the teacher's reluctance to call a sentence unacceptable, the "
            f"minority class ({neg} of {pos + neg} dev sentences) that MCC rewards. Dev "
            f"sentences predicted unacceptable, per seed: teacher {minority(t)}; "
            + "; ".join(parts) + f". With 3 layers the no-KD student is already within "
            f"{100 * (t['mcc'] - no3):.1f} MCC points of this weak teacher (MCC {t['mcc']:.2f}; "
            f"the KD students agree with it on {min(agree):.0%}–{max(agree):.0%} of dev), so "
            "KD hands over the teacher's class balance more than its judgement. (Counts solved "
            "from each row's accuracy and MCC.)")


def kdvs_stsb_why(res: dict, by: dict, teachers: dict) -> str:
    """Why KD does not beat no-KD on STS-B (regression), from the rows: what the KD loss is
    there, how close the teacher's training-row scores are to gold, and what moves the students
    instead (the learning rate for both, hidden-state KD, more transfer text)."""
    t = teachers.get("stsb")
    if not t or not by.get(("stsb", 2, "")):
        return ""
    train = next((r["teacher_train"]["pearson"] for k, r in sorted(res.items())
                  if k.startswith(("kdvs_stsb", "kdsweep_stsb")) and "teacher_train" in r), None)
    parts = ["Why KD does not beat no-KD on STS-B: it is regression, and regression KD is the "
             "MSE to the teacher's score, so at α 0.5 the loss (1−α)(s−y)² + α(s−t)² equals "
             "(s − (y+t)/2)² plus a constant: the student fits one number per pair, halfway "
             "between the gold score and the teacher's, with no distribution over classes to "
             "carry what the teacher knows beyond its answer."]
    if train is not None:
        parts.append(f"On its own training rows the teacher's scores track gold closely "
                     f"(Pearson {train:.3f}, against {t['pearson']:.3f} on dev), so that target "
                     "is a lightly smoothed gold score, and the KD student learns what the no-KD "
                     "one does.")
    sweep = {(r["layers"], r["variant"], r["seed"]): r for k, r in res.items()
             if k.startswith("kdsweep_stsb_")}
    kd = {(r["layers"], r["seed"]): r for k in (2, 3) for r in by.get(("stsb", k, ""), [])}
    no = {(r["layers"], r["seed"]): r for k in (2, 3) for r in by.get(("stsb", k, False), [])}

    def lr_gain(k: int, seed: int) -> str:
        p_kd = sweep[(k, "lr2e-4", seed)]["pearson"]
        p_no = sweep[(k, "nokd-lr2e-4", seed)]["pearson"]
        return (f"the {k}-layer no-KD student gains {100 * (p_no - no[(k, seed)]['pearson']):+.1f} "
                f"points and KD {100 * (p_kd - kd[(k, seed)]['pearson']):+.1f}, ending "
                f"{100 * (p_kd - p_no):+.1f} apart")

    lr = [(k, seed) for (k, v, seed) in sorted(sweep) if v == "lr2e-4"
          and (k, "nokd-lr2e-4", seed) in sweep and (k, seed) in kd and (k, seed) in no]
    if lr:
        parts.append("What holds both students back is their training budget, not their "
                     "targets: at lr 2e-4 instead of 1e-4 (seed "
                     + ", ".join(sorted({str(s) for _, s in lr})) + ") "
                     + "; ".join(lr_gain(k, s) for k, s in lr) + ".")
    hid = []
    for k in (2, 3):
        seeds = sorted(s for (kk, v, s) in sweep if kk == k and v == "hidden" and (k, s) in no)
        if seeds:
            h = [sweep[(k, "hidden", s)]["pearson"] for s in seeds]
            n = [no[(k, s)]["pearson"] for s in seeds]
            d = statistics.mean(h) - statistics.mean(n)
            txt = (f"{k}-layer {statistics.mean(h):.4f} against no-KD {statistics.mean(n):.4f} "
                   f"({100 * d:+.1f} points, {len(seeds)} seed{'s' if len(seeds) > 1 else ''}")
            if len(seeds) > 1:
                sd = max(statistics.stdev(h), statistics.stdev(n))
                txt += (", more than one stdev" if d > sd else ", not more than one stdev")
                txt += f" ({100 * sd:.1f})"
            hid.append(txt + ")")
    if hid:
        parts.append("Giving the student more of the teacher than its score, its token states "
                     "(`-o kd.features=[hidden]`, the `+ hidden-state KD` column below), gives "
                     + " and ".join(hid) + ".")
        others = []
        for k2, r in sorted(res.items()):
            if k2.startswith("kdsweep_") and r.get("variant") == "hidden" and r["task"] != "stsb":
                m = KDVS_METRIC.get(r["task"], "accuracy")
                base = next((b for b in by.get((r["task"], r["layers"], ""), [])
                             if b["seed"] == r["seed"]), None)
                kds = [b[m] for b in by.get((r["task"], r["layers"], ""), [])]
                if base and len(kds) > 1:
                    others.append((f"{r['task']} {r['layers']}-layer "
                                   f"{100 * (r[m] - base[m]):+.2f}",
                                   r[m] - base[m] > statistics.stdev(kds)))
        if others:
            gains = any(g for _, g in others)
            parts.append("Elsewhere, against the default KD run of the same seed, it gives (in "
                         "points) " + ", ".join(t for t, _ in others)
                         + ("" if gains else ": none above the default's stdev over its seeds")
                         + ", so it is an option for regression students, not a default.")
    if by.get(("stsb", 2, "eda x4")):
        parts.append("More transfer text, which lifts MRPC, hurts here: the `KD + eda x4` rows "
                     "are below no-KD, as a student held back by its budget would be: at matched "
                     "steps each gold pair is seen a fifth as often.")
    return " ".join(parts)


def kdvs_groups(res: dict) -> tuple[list, dict, dict]:
    """Issue 9's rows, the teachers per task, and the rows per (task, layers, kd) where kd is
    False (no-KD), "" (KD), or the augmentation of the KD transfer set."""
    rows = [r for k, r in res.items() if k.startswith("kdvs_") and "layers" in r]
    teachers = {r["task"]: r for k, r in res.items() if k.startswith("kdvs_")
                and k.endswith("_teacher")}
    by: dict = {}
    for r in rows:
        by.setdefault((r["task"], r["layers"], r.get("augment", "") if r["kd"] else False),
                      []).append(r)
    return rows, teachers, by


def kdvs_cells(by: dict, teachers: dict) -> list[dict]:
    """One cell per (task, layers, KD variant) that has KD and no-KD rows on common seeds: the
    means, stdevs and the target (KD − no-KD > the larger stdev where the teacher is ≥ 2
    points above no-KD; ``met`` None where it is not)."""
    cells = []
    for (task, k, aug) in sorted({(t, k, a) for t, k, a in by if a is not False}):
        m = KDVS_METRIC.get(task, "accuracy")
        kd_rows = by.get((task, k, aug), [])
        no_rows = by.get((task, k, False), [])
        seeds = {r["seed"] for r in kd_rows} & {r["seed"] for r in no_rows}
        no = [r[m] for r in no_rows if r["seed"] in seeds]
        kd = [r[m] for r in kd_rows if r["seed"] in seeds]
        if not no or not kd:
            continue
        t = teachers.get(task, {}).get(m)
        mn, mk = statistics.mean(no), statistics.mean(kd)
        sd = statistics.stdev(kd) if len(kd) > 1 else 0.0
        sdn = statistics.stdev(no) if len(no) > 1 else 0.0
        gap = t is not None and t - mn >= 0.02
        acc = "—"
        if m != "accuracy" and all("accuracy" in r for r in kd_rows + no_rows):
            acc = (f"{statistics.mean(r['accuracy'] for r in no_rows if r['seed'] in seeds):.4f}"
                   f" / {statistics.mean(r['accuracy'] for r in kd_rows if r['seed'] in seeds):.4f}")
        cells.append({"task": task, "layers": k, "aug": aug, "metric": m, "teacher": t,
                      "nokd": mn, "sd_nokd": sdn, "kd": mk, "sd_kd": sd, "seeds": len(kd),
                      "gap": gap, "met": (mk - mn > max(sd, sdn)) if gap else None,
                      "acc": acc, "command": kd_rows[0]["command"]})
    return cells


def kdvs_section(res: dict) -> list[str]:
    """Issue 9: KD vs no-KD at matched steps with the defaults, mean ± stdev over seeds."""
    rows, teachers, by = kdvs_groups(res)
    if not rows:
        return []
    kd_any = next((r for r in rows if r["kd"]), {})
    if not any(k is not False and (t, n, False) in by for t, n, k in by):
        return []  # no cell has both rows yet
    out = ["## KD vs no-KD with the defaults (matched steps)", "",
           "Students = teacher-layer subsets of the fine-tuned all-MiniLM-L6-v2 teacher (the "
           "same saved init for both rows of a cell, head included); no-KD = `finetune` of "
           "that init; KD = `distill` with the `DistillConfig` defaults (logit KD, α "
           f"{kd_any.get('alpha')}, τ {kd_any.get('temperature')}, lr 1e-4), the same epochs, "
           "batch 32, rows and seed. `KD + eda xN`: the same, its transfer set also holding N "
           "EDA copies of every training row (teacher-labelled, soft loss only), stopped at the "
           "no-KD run's step count. Target: KD above no-KD "
           "by more than one stdev wherever the teacher is ≥ 2 points above no-KD.", "",
           "| task | metric | teacher | layers | no-KD | KD | Δ | seeds | accuracy no-KD / KD "
           "| teacher − no-KD ≥ 2 pts | target | command |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in kdvs_cells(by, teachers):
        teacher = "—" if c["teacher"] is None else f"{c['teacher']:.4f}"
        layers = f"{c['layers']} (KD + {c['aug']})" if c["aug"] else str(c["layers"])
        met = "n/a" if c["met"] is None else "yes" if c["met"] else "**no**"
        out.append(f"| {c['task']} | {c['metric']} | {teacher} | {layers} | "
                   f"{c['nokd']:.4f} ± {c['sd_nokd']:.4f} | {c['kd']:.4f} ± {c['sd_kd']:.4f} | "
                   f"{c['kd'] - c['nokd']:+.4f} | {c['seeds']} | {c['acc']} | "
                   f"{'yes' if c['gap'] else 'no'} | {met} | `{c['command']}` |")
    cola = kdvs_cola_why(by, teachers)
    stsb = kdvs_stsb_why(res, by, teachers)
    out += ["", KDVS_WHY, *(["", cola] if cola else []), *(["", stsb] if stsb else []), "",
            machines_line(rows + list(teachers.values())), ""]
    return out


#: kd_vs_nokd.py --sweep's variants, in column order: (name, what it moves off the default)
KDSWEEP_COLS = (("a0.9", "α 0.9"), ("t1", "τ 1"), ("t4", "τ 4"), ("a0.9-t1", "α 0.9, τ 1"),
                ("a0.9-t4", "α 0.9, τ 4"), ("lr5e-5", "lr 5e-5"), ("lr2e-4", "lr 2e-4"),
                ("hidden", "+ hidden-state KD"), ("nokd-lr2e-4", "no-KD at lr 2e-4"))


def kdsweep_section(res: dict) -> list[str]:
    """Issue 9 item 3: the KD defaults against α, τ and lr moved off them, per (task, layers)
    on one seed, each variant's Δ to the default's own row of that seed, with the spread of the
    default over its 3 seeds for scale."""
    sweep = [r for k, r in res.items() if k.startswith("kdsweep_")]
    if not sweep:
        return []
    _, teachers, by = kdvs_groups(res)
    cells: dict = {}
    for r in sweep:
        cells.setdefault((r["task"], r["layers"], r["seed"]), {})[r["variant"]] = r
    out = ["## KD defaults against their neighbours (α, τ, learning rate)", "",
           "Each row is one (task, student, seed) of the table above: the `DistillConfig` "
           "default (α 0.5, τ 2, lr 1e-4; its `kd` row of that seed) and KD runs identical but "
           "for the setting named in the column (the same teacher, init, rows, epochs and "
           "seed). Cells are the variant minus the default, in points of the task's metric; the "
           "default's stdev over its 3 seeds is beside it for scale. `+ hidden-state KD` adds "
           "`kd.features=[hidden]` (MSE between each student layer's token states and its "
           "mapped teacher layer's, weight `kd.beta` 1) to the default; `no-KD at lr 2e-4` is "
           "the no-KD run at the lr-2e-4 variant's learning rate, so the two can be compared "
           "like for like. Regression (STS-B) has no τ, so its τ columns are empty.", "",
           "| task | layers | seed | metric | no-KD | default | default's sd (3 seeds) | "
           + " | ".join(label for _, label in KDSWEEP_COLS) + " | command |",
           "|---|---|---|---|---|---|---|" + "---|" * len(KDSWEEP_COLS) + "---|"]
    deltas: dict = {v: [] for v, _ in KDSWEEP_COLS}
    wins: dict = {v: [] for v, _ in KDSWEEP_COLS}
    for (task, k, seed), vs in sorted(cells.items()):
        m = KDVS_METRIC.get(task, "accuracy")
        kd = {r["seed"]: r for r in by.get((task, k, ""), [])}
        no = {r["seed"]: r for r in by.get((task, k, False), [])}
        if seed not in kd:
            continue
        base = kd[seed][m]
        sd = statistics.stdev(r[m] for r in kd.values()) if len(kd) > 1 else 0.0
        row = []
        for v, _ in KDSWEEP_COLS:
            if v not in vs:
                row.append("—")
                continue
            d = vs[v][m] - base
            deltas[v].append(d)
            if d > sd:
                wins[v].append(f"{task} {k}-layer")
            row.append(f"{100 * d:+.2f}")
        nokd = f"{no[seed][m]:.4f}" if seed in no else "—"
        out.append(f"| {task} | {k} | {seed} | {m} | {nokd} | {base:.4f} | {100 * sd:.2f} | "
                   + " | ".join(row) + f" | `{next(iter(vs.values()))['command']}` |")
    summary = []
    for v, label in KDSWEEP_COLS:
        if deltas[v] and not v.startswith("nokd"):
            summary.append(f"{label}: mean {100 * statistics.mean(deltas[v]):+.2f} over "
                           f"{len(deltas[v])} cell{'s' if len(deltas[v]) > 1 else ''}, above the "
                           f"default by more than its sd in {len(wins[v])}"
                           + (f" ({', '.join(wins[v])})" if wins[v] else ""))
    out += ["", "Per variant: " + "; ".join(summary) + "."]
    matched = []
    for (task, k, seed), vs in sorted(cells.items()):
        m = KDVS_METRIC.get(task, "accuracy")
        kd = {r["seed"]: r for r in by.get((task, k, ""), [])}
        no = {r["seed"]: r for r in by.get((task, k, False), [])}
        if "lr2e-4" in vs and "nokd-lr2e-4" in vs and seed in kd and seed in no:
            matched.append((f"{task} {k}-layer", vs["lr2e-4"][m] - kd[seed][m],
                            vs["nokd-lr2e-4"][m] - no[seed][m],
                            vs["lr2e-4"][m] - vs["nokd-lr2e-4"][m]))
    if matched:
        out += ["", "lr 2e-4 instead of 1e-4, for KD and for no-KD (the same seed), in points: "
                + "; ".join(f"{c}: KD {100 * g_kd:+.2f}, no-KD {100 * g_no:+.2f}, so KD − no-KD "
                            f"at lr 2e-4 is {100 * d:+.2f}" for c, g_kd, g_no, d in matched)
                + "."]
    out += ["", machines_line(sweep), ""]
    return out


KDCLINC_ROWS = (("nokd", "no-KD"), ("kd", "KD, τ 2 (default)"), ("kd-auto", "KD, τ auto"))


def kdclinc_section(res: dict) -> list[str]:
    """Issue 9's many-class case: CLINC150, no-KD vs KD at τ 2 vs ``kd.temperature=auto``, one
    table per teacher (``kd_clinc.py --teacher-lr``)."""
    teachers = {("" if k == "kdclinc_teacher" else k[len("kdclinc_"):-len("_teacher")]): r
                for k, r in res.items() if k.startswith("kdclinc_") and k.endswith("_teacher")}
    rows_all = [r for k, r in res.items() if k.startswith("kdclinc_") and "row" in r]
    if not teachers or not rows_all:
        return []
    t0 = next(iter(teachers.values()))
    out = ["## KD on a many-class task: CLINC150 and the KD temperature", "",
           f"CLINC150 (in-scope, {t0['classes']} intents): train 15,000, val 3,000 "
           "(training-time eval; where `kd.temperature=auto` fits τ by temperature scaling of "
           "the teacher), test 4,500 (the figure below; the fit never sees it). Teachers: "
           "all-MiniLM-L6-v2 fine-tuned on the train rows (one table each). Students: the "
           "3-layer teacher-layer subset of that teacher (head included), the `DistillConfig` "
           "defaults (α 0.5, lr 1e-4, 3 epochs, batch 32) for every row, matched steps."]
    for tag, t in sorted(teachers.items()):
        rows = [r for r in rows_all if r.get("teacher_tag", "") == tag]
        if not rows:
            continue
        lr, ep = t.get("teacher_lr", 5e-5), t.get("teacher_epochs", 3)
        out += ["", f"Teacher fine-tuned {ep:g} epochs at lr {lr:g}: test accuracy "
                f"{t['test_accuracy']:.4f}; its mean top probability on val is "
                f"{t['mean_top_prob_t1']:.2f} at τ 1 and {t['mean_top_prob_t2']:.2f} at τ 2.", "",
                "| student | test accuracy | seeds | τ used | teacher's mean top probability at "
                "that τ (val) | agreement with the teacher (val) | command |",
                "|---|---|---|---|---|---|---|"]
        for row, label in KDCLINC_ROWS:
            rs = [r for r in rows if r["row"] == row]
            if not rs:
                continue
            acc = [r["test_accuracy"] for r in rs]
            sd = f" ± {statistics.stdev(acc):.4f}" if len(acc) > 1 else ""
            taus = [r.get("kd_temperature", r.get("kd_temperature_set")) for r in rs]
            tau = ("—" if row == "nokd" else ", ".join(f"{x:.2f}" if isinstance(x, float) else
                                                        str(x) for x in sorted(set(taus))))
            top = ("—" if row == "nokd" else f"{t['mean_top_prob_t2']:.2f}" if row == "kd" else
                   ", ".join(f"{r['teacher_mean_top_prob_fit']:.2f}" for r in rs[:1]))
            agree = ("—" if row == "nokd" else
                     f"{statistics.mean(r['teacher_agreement'] for r in rs):.4f}")
            out.append(f"| {label} | {statistics.mean(acc):.4f}{sd} | {len(rs)} | {tau} | "
                       f"{top} | {agree} | `{rs[0]['command']}` |")
        nokd = [r["test_accuracy"] for r in rows if r["row"] == "nokd"]
        m = statistics.mean(nokd) if nokd else None
        if m is not None and t["test_accuracy"] < m:
            out += ["", f"This teacher (test {t['test_accuracy']:.4f}, mean top probability "
                    f"{t['mean_top_prob_t1']:.2f} at τ 1) is below the no-KD student "
                    f"({m:.4f}), so these rows are not the issue's "
                    "strong-teacher case: KD can only pull the student down to it, at either τ."]
        elif m is not None and t["test_accuracy"] - m < 0.02:
            gaps = "".join(
                f"; {label} is {100 * (statistics.mean(v) - m):+.1f} points from no-KD"
                for row, label in KDCLINC_ROWS[1:]
                if (v := [r["test_accuracy"] for r in rows if r["row"] == row]))
            out += ["", f"This teacher (test {t['test_accuracy']:.4f}) is "
                    f"{100 * (t['test_accuracy'] - m):.1f} points above the no-KD student "
                    f"({m:.4f}), under the 2 points from which the target asks KD to win: the "
                    "student starts from the teacher's own layers and head and reaches it "
                    f"without KD{gaps}."]
        autos = [r.get("kd_temperature") for r in rows if r["row"] == "kd-auto"]
        if autos and all(x == 0.5 for x in autos):
            out += ["", "`auto` ended at its lower clamp (τ = 0.5) on every seed: the "
                    "underconfident teacher would be sharpened further if the clamp allowed it."]
            fits = [r for r in rows if r["row"] == "kd-auto" and "teacher_tau_fit" in r]
            if fits:
                f = fits[0]
                out[-1] += (f" Unclamped, temperature scaling's NLL minimum is at τ "
                            f"{f['teacher_tau_fit']:.2f} (val NLL "
                            f"{f['teacher_nll_tau_fit']:.3f}, against {f['teacher_nll_fit']:.3f} "
                            "at τ 0.5, where the teacher's mean top probability is already "
                            f"{f['teacher_mean_top_prob_fit']:.2f})"
                            + (", so the clamp changes the targets little."
                               if f["teacher_nll_fit"] - f["teacher_nll_tau_fit"]
                               < 0.02 * f["teacher_nll_fit"] else
                               ": the clamp costs the targets part of the fit."))
    out += ["", machines_line(rows_all + list(teachers.values())), ""]
    return out


L2A_ROWS = ("teacher", "none", "eda", "cbert", "l2a", "l2a-nosource", "l2a-notarget")


def l2a_by_seed(rs: dict, name: str) -> dict[int, float]:
    """One row's final accuracy per seed."""
    return {r["seed"]: r["final"]["accuracy"] for r in rs.get(name, [])}


def l2a_gaps(rs: dict) -> tuple[str, list[float]] | None:
    """The best baseline and, per seed that has both rows, L2A minus that baseline in points:
    paired differences (a seed's rows share teacher, target rows and round-0 student), so a
    seed still running never mixes into a mean. The best baseline is the one L2A leads least
    on those seeds."""
    l2a = l2a_by_seed(rs, "l2a")
    diffs = {b: [100 * (l2a[s] - v[s]) for s in sorted(l2a) if s in v]
             for b in ("none", "eda", "cbert") if (v := l2a_by_seed(rs, b))}
    diffs = {b: d for b, d in diffs.items() if d}
    if not diffs:
        return None
    best = min(diffs, key=lambda b: statistics.mean(diffs[b]))
    return best, diffs[best]


def l2a_verdict(rs: dict) -> str:
    """The issue's targets for one setting: L2A ≥ the best baseline + 1.5 points, and the
    student ≥ the teacher, both on the seeds that have both rows."""
    g = l2a_gaps(rs)
    if g is None:
        return "Targets: not measured yet (needs the l2a row and a baseline on one seed)."
    best, per_seed = g
    gap = statistics.mean(per_seed)
    line = (f"Targets: L2A − best baseline ({best}) = {gap:+.1f} points over "
            f"{len(per_seed)} seed{'s' if len(per_seed) > 1 else ''} "
            f"({'met' if gap >= 1.5 else 'not met'}: ≥ +1.5)")
    if len(per_seed) > 1:
        line += (f"; per seed {', '.join(f'{d:+.1f}' for d in per_seed)} "
                 f"(sd {statistics.stdev(per_seed):.1f})")
    l2a, t = l2a_by_seed(rs, "l2a"), l2a_by_seed(rs, "teacher")
    both = sorted(set(l2a) & set(t))
    if both:
        ms, mt = (100 * statistics.mean(d[s] for s in both) for d in (l2a, t))
        line += (f"; L2A student {ms:.1f} vs teacher {mt:.1f} on {len(both)} seed"
                 f"{'s' if len(both) > 1 else ''} "
                 f"({'matches or beats' if ms >= mt else 'below'} the teacher)")
    return line + "."


def l2a_cells(by: dict) -> list[tuple[str, float, int]]:
    """(setting and fraction, mean paired gap L2A − best baseline in points, seeds) for each
    measured cell at ≤ 10% target data and the default candidate count."""
    cells = []
    for (setting, frac, cands), rs in sorted(by.items()):
        g = l2a_gaps(rs)
        if frac <= 0.1 and cands == 64 and g and g[1]:
            cells.append((f"{setting} {frac:g}", statistics.mean(g[1]), len(g[1])))
    return cells


def l2a_groups(res: dict) -> dict:
    """L2A result rows per (setting, fraction, candidates), then per row name."""
    by: dict = {}
    for k, r in res.items():
        if k.startswith("l2a_"):
            by.setdefault((r["setting"], r["fraction"], r.get("candidates", 64)), {}
                          ).setdefault(r["row"], []).append(r)
    return by


def l2a_overall(by: dict) -> str | None:
    """The issue's first target as worded: L2A beats the best baseline by ≥ 1.5 points *on
    average* at ≤ 10% target data: the mean over those (setting, fraction) cells of each
    cell's gap, listing the cells, so a single strong setting is visible as such."""
    cells = l2a_cells(by)
    if not cells:
        return None
    avg = statistics.mean(c[1] for c in cells)
    return ("Over the settings at ≤ 10% target data so far ("
            + "; ".join(f"{n}: {d:+.1f} over {k} seed{'s' if k > 1 else ''}"
                        for n, d, k in cells)
            + f"), L2A − best baseline averages {avg:+.1f} points "
            f"({'met' if avg >= 1.5 else 'not met'}: ≥ +1.5).")


def l2a_section(res: dict) -> list[str]:
    """Issue 14: L2A and its baselines per (setting, target fraction), mean ± stdev."""
    rows = [r for k, r in res.items() if k.startswith("l2a_")]
    if not rows:
        return []
    by = l2a_groups(res)
    out = ["## L2A: learning to augment in data-scarce targets", "",
           "2-layer students distilled from all-MiniLM-L6-v2 fine-tuned on source + the "
           "available target rows; every row of a setting and seed shares the teacher, the "
           "target rows and the round-0 student, and trains the same rounds for the same "
           "optimizer steps (each round continues the previous round's student; `none` trains "
           "its rounds on the target rows alone); EDA and CBERT add as many augmented rows as "
           "L2A kept (`kept`), spread over the rounds. Target-task dev accuracy, mean ± stdev "
           "(seeds).", ""]
    for (setting, frac, cands), rs in sorted(by.items()):
        out += [f"**{setting}, {frac:g} of the target's training rows, {cands} generated "
                "candidates a round**", "",
                "| row | accuracy | seeds | kept | command |", "|---|---|---|---|---|"]
        for name in L2A_ROWS:
            if name not in rs:
                continue
            v = [r["final"]["accuracy"] for r in rs[name]]
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            kept = [r.get("kept_total") for r in rs[name] if r.get("kept_total") is not None]
            out.append(f"| {name} | {statistics.mean(v):.4f} ± {sd:.4f} | {len(v)} | "
                       f"{statistics.mean(kept):.0f} | `{rs[name][0]['command']}` |"
                       if kept else f"| {name} | {statistics.mean(v):.4f} ± {sd:.4f} | "
                       f"{len(v)} | — | `{rs[name][0]['command']}` |")
        out += ["", l2a_verdict(rs), ""]
    overall = l2a_overall(by)
    out += [overall, ""] if overall else []
    out += [f"Machine: {machine_line(rows[0])}.", ""]
    return out


def devices_section(res: dict) -> list[str]:
    """Same finetune/distill commands timed on the CPU and on a CUDA GPU, each row naming its
    device; a GPU row only exists where a result recorded a GPU."""
    rows = [r for k, r in res.items() if k.startswith("device_")]
    out = ["## CPU and CUDA GPU", ""]
    if not rows:
        out += ["No CUDA GPU was available to this project's sessions so far: the CUDA tests "
                "(`tests/e2e/test_cuda.py`: finetune/evaluate with bf16, cached + logits-file "
                "gold multi-teacher distillation, online teacher with kill-and-resume, bf16 "
                "fingerprint, GPU bench and quantize) are skipped by `make test` here and have "
                "**not been run**; no GPU figure is claimed. Every figure on this page is from "
                "the CPU named in its section.", ""]
        return out
    out += ["| command | device | ex/s | dev metric | machine |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| `{r['command']}` | {device_of(r)} | {r['train_examples_per_s']} | "
                   f"{r['metric']} | {machine_line(r)} |")
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


def targets_section(res: dict) -> list[str]:
    """The issues' targets, each checked against the measured figures above."""
    out = ["## Targets at a glance", "", "| target | measured | met |", "|---|---|---|"]

    def row(target, measured, ok):
        met = "n/a" if ok is None else "yes" if ok else "**no**"
        out.append(f"| {target} | {measured} | {met} |")

    ft = res.get("finetune_sst2_minilm-l6")
    if ft:
        row("minilm-l6 on full SST-2: dev accuracy ≈ 89–91%", f"{ft['accuracy']:.4f}",
            0.89 <= ft["accuracy"] <= 0.91)
    s3 = res.get("distill_sst2_s3-logit-hidden")
    if s3:
        row("3-layer student keeps ≥ 97% of the teacher's SST-2 accuracy",
            f"{100 * s3['retention']:.1f}% (logit + hidden KD)", s3["retention"] >= 0.97)
    for task in ("sst2", "mrpc", "rte"):
        for depth in ("s3", "s2"):
            base = res.get(f"distill_{task}_{depth}-nokd")
            kd = [res.get(f"distill_{task}_{depth}-{v}") for v in ("logit", "logit-hidden")]
            if base and all(kd):
                p = base["primary"]
                best = max(k["metrics"][p] for k in kd)
                row(f"KD beats no-KD ({task}, {depth[1]}-layer student; distillation "
                    "matrix, 1 seed)",
                    f"best KD {p} {best:.4f} vs no-KD {base['metrics'][p]:.4f}",
                    best > base["metrics"][p])
    ec = res.get("epochcost_sst2")
    if ec:
        row("cached-teacher KD epoch ≤ 1.1× a plain fine-tuning epoch",
            f"{ec['ratio_cached']:.3f}×", ec["ratio_cached"] <= 1.1)
    cs = res.get("compress_sst2")
    if cs:
        ms = {m["label"]: m for m in cs["models"]}
        st, te = ms.get("student-3L"), ms.get("teacher")
        for name in ("student-int8-auto", "student-int8-torchao", "student-int8-torch-dynamic",
                     "student-onnx-int8"):
            q = ms.get(name)
            if q and st:
                drop = 100 * (st["accuracy"] - q["accuracy"])
                fast = st["batch32"]["p50_ms"] / q["batch32"]["p50_ms"]
                row(f"{name}: ≤ 1 point lost and ≥ 2× faster than the FP32 student at b=32",
                    f"{drop:+.2f} points lost, {fast:.2f}× faster", drop <= 1 and fast >= 2)
        if te:
            ok = [m for m in cs["models"] if m.get("accuracy") and m["label"] != "teacher"
                  and m["accuracy"] / te["accuracy"] >= 0.96]
            best = max(ok, key=lambda m: m["batch32"]["speedup"], default=None)
            if best:
                row("best student ≥ 4× faster than the teacher at ≥ 96% retention",
                    f"{best['label']}: {best['batch32']['speedup']:.2f}× at "
                    f"{100 * best['accuracy'] / te['accuracy']:.1f}%",
                    best["batch32"]["speedup"] >= 4)
    mfs = res.get("wsd_mfs")
    studs = [(k[4:], r) for k, r in res.items() if k.startswith(("wsd_student", "wsd_prior_st"))]
    if mfs and studs:
        def all_f1(r):
            return (r["prior_tuned"]["sets"] if "prior_tuned" in r else
                    {n: v["model"] for n, v in r["sets"].items()})["ALL"]["f1"]

        name, best = max(studs, key=lambda kv: all_f1(kv[1]))
        m, f = 100 * mfs["sets"]["ALL"]["mfs"]["f1"], 100 * all_f1(best)
        row("WSD student ≥ MFS + 5 F1 on ALL with ≤ 1/5 of BERT-base's parameters",
            f"{name}: {f:.1f} vs MFS {m:.1f}, {best['params'] / 1e6:.1f}M parameters",
            f >= m + 5 and best["params"] <= 110e6 / 5)
    _, teachers, by = kdvs_groups(res)
    for c in kdvs_cells(by, teachers):
        if c["aug"]:
            continue
        row(f"KD > no-KD by more than one stdev, defaults, matched steps ({c['task']}, "
            f"{c['layers']}-layer, {c['seeds']} seed{'s' if c['seeds'] > 1 else ''})",
            f"{c['metric']} {c['kd']:.4f} ± {c['sd_kd']:.4f} vs {c['nokd']:.4f} ± "
            f"{c['sd_nokd']:.4f}" + ("" if c["gap"] else "; teacher < no-KD + 2 points"),
            c["met"])
    ada = adabert_sst2_target(res)
    if ada:
        fast = [t for t in ada[2] if t[2] >= 8]
        kept = [t for t in ada[2] if t[1] >= 0.95]
        desc = []
        if fast:
            r, ret, sp = max(fast, key=lambda t: t[1])
            desc.append(f"best retention at ≥ 8×: {r} {100 * ret:.1f}% at {sp:.1f}×")
        if kept:
            r, ret, sp = max(kept, key=lambda t: t[2])
            desc.append(f"fastest at ≥ 95%: {r} {100 * ret:.1f}% at {sp:.1f}×")
        row("AdaBERT on SST-2: ≥ 8× faster than the teacher at b=32 and ≥ 95% retention",
            "; ".join(desc) or "no timed student", ada[0])
        sp = {m["label"]: m for m in res.get("adabertspeed_sst2", {}).get("models", [])}
        bil_sp = sp.get("bilstm (timing only)", {}).get("batch32", {}).get("speedup")
        for suffix, which in (("", "the 20,000-row subset"), ("-all", "all training rows")):
            bil = res.get(f"distill_sst2_bilstm-logit{suffix}")
            mine = [t for t in ada[2] if t[0].endswith("-retrain-all") == bool(suffix)]
            if not bil or not bil_sp or not mine:
                continue
            wins = [t for t in mine if t[1] > bil["retention"] and t[2] > bil_sp]
            faster = [t for t in mine if t[2] > bil_sp]
            r, ret, spd = max(wins or faster or mine, key=lambda t: t[1])
            row(f"AdaBERT beats the BiLSTM on both retention and b=32 speed (SST-2, {which})",
                f"{r} {100 * ret:.1f}% at {spd:.1f}× vs BiLSTM "
                f"{100 * bil['retention']:.1f}% at {bil_sp:.1f}×", bool(wins))
    by = l2a_groups(res)
    cells = l2a_cells(by)
    if cells:
        avg = statistics.mean(c[1] for c in cells)
        row("L2A beats the best augmentation baseline by ≥ 1.5 points on average at ≤ 10% "
            "target data", f"{avg:+.1f} points over {len(cells)} settings ("
            + ", ".join(f"{n} {d:+.1f}" for n, d, _ in cells) + ")", avg >= 1.5)
    for (setting, frac, cands), rs in sorted(by.items()):
        smallest = min(f for s_, f, c in by if s_ == setting and c == cands)
        l2a, t = l2a_by_seed(rs, "l2a"), l2a_by_seed(rs, "teacher")
        both = sorted(set(l2a) & set(t))
        if cands == 64 and frac == smallest and both:
            ms, mt = (100 * statistics.mean(d[s_] for s_ in both) for d in (l2a, t))
            row(f"L2A student matches the teacher at the smallest target size ({setting} "
                f"{frac:g})", f"{ms:.1f} vs teacher {mt:.1f} ({len(both)} seeds)", ms >= mt)
    out.append("")
    return out if len(out) > 5 else []


def main() -> None:
    res = load()
    lines = ["# Benchmarks", "",
             "Every figure below is read from `benchmarks/results/*.json`, written by the "
             "command shown in its row, on the machine its section names (this project's "
             "2-core CPU machines, no GPU so far). "
             "Regenerate this page with `.venv/bin/python benchmarks/render.py`.", ""]
    lines += targets_section(res) + finetune_section(res) + distill_section(res) + multiteacher_section(res)
    lines += compress_section(res) + speed_section(res) + mlm_section(res)
    lines += mlm_downstream_section(res) + adabert_section(res) + metakd_section(res)
    lines += wsd_section(res) + lexical_transfer_section(res) + kdvs_section(res)
    lines += kdsweep_section(res)
    lines += kdclinc_section(res)
    lines += l2a_section(res)
    lines += devices_section(res)
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
