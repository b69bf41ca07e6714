"""BENCHMARKS.md section: AdaBERT."""

from __future__ import annotations


from render_common import machine_line, machines_line


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


def adabert_synthetic_section(res: dict) -> list[str]:
    """Issue 30's synthetic check: an ordered-bigram task only an order-aware op can solve,
    searched at several β (one table per search length); which ops the derived cell kept."""
    rs = sorted((r for k, r in res.items() if k.startswith("adabertsyn_bigram")),
                key=lambda r: r["steps"])
    if not rs:
        return []
    out = ["### AdaBERT search on a task only a convolution can solve", "",
           f"Task: {rs[0]['task']}; label 1 for \"A B\", 0 for \"B A\" among random filler "
           "tokens. The head pools over positions, so identity and the (symmetric) pools "
           "cannot tell the labels apart. Search: 2 cells at most, 2 nodes, width 16, costs = "
           "parameter shares of the search space, no probes (γ = 0), seed "
           f"{rs[0]['seed']}.", "",
           "| search steps | β | cells | convolutions among the kept edges | derived cell | "
           "search time (s) |", "|---|---|---|---|---|---|"]
    for r in rs:
        for row in r["rows"]:
            g = row["architecture"]
            cell = "; ".join(", ".join(f"{op}←{i}" for i, op in node) for node in g["nodes"])
            out.append(f"| {r['steps']} | {row['beta']:g} | {g['cells']} | {row['convs']} of "
                       f"{row['edges']} | {cell} | {row['seconds']:.0f} |")
    at4 = [row["convs"] for r in rs for row in r["rows"] if row["beta"] == 4.0]
    at0 = [row["convs"] for r in rs for row in r["rows"] if row["beta"] == 0.0]
    if at4 and not any(at4):
        out += ["", "**Target not met**: the issue asks for a convolution at the default "
                "β = 4 and identity/pools at a large β. The search keeps convolutions only at "
                f"β = 0 ({', '.join(map(str, at0))} of 4 edges); at every β > 0 tried it keeps "
                "pools "
                "and identity, at 1,500 search steps as at 300. With the expected-cost "
                "efficiency loss and affine-free search convolutions the architecture gradient "
                "does see the task (β = 0 picks convolutions), but the convolutions' weights, "
                "trained only when sampled (GDAS), do not lower the loss by more than their "
                "share of the cost: a weight warm-up before the architecture steps, or the full "
                "(unsampled) forward, are the next things to measure."]
    out += [""] + [f"Command: `{r['command']}`." for r in rs] + [machines_line(rs), ""]
    return out
