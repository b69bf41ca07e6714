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


def _syn_setting(r: dict) -> str:
    """How a synthetic result's search differs from the defaults it records."""
    st = r.get("settings") or {}
    parts = [f"{st['warmup_forward']} warm-up" if st.get("warmup_forward") == "soft" else "",
             "straight-through" if st.get("arch_gradient") == "straight-through" else ""]
    return ", ".join(p for p in parts if p) or "defaults"


def adabert_synthetic_section(res: dict) -> list[str]:
    """Issue 30's synthetic check: an ordered-bigram task only an order-aware op can solve,
    searched at several β; whether each budget keeps a convolution at the default β = 4 and
    only cheap ops at β = 100."""
    rs = sorted((r for k, r in res.items() if k.startswith("adabertsyn_bigram")),
                key=lambda r: (r["steps"], _syn_setting(r) != "defaults"))
    if not rs:
        return []
    out = ["### AdaBERT search on a task only a convolution can solve", "",
           f"Task: {rs[0]['task']}; label 1 for \"A B\", 0 for \"B A\" among random filler "
           "tokens. The head pools over positions, so identity and the (symmetric) pools "
           "cannot tell the labels apart, nor can the dilated convolutions (they skip the "
           "neighbour); conv 3/5/7 can. Search: 2 cells at most, 2 nodes, width 16, costs = "
           "parameter shares of the search space, no probes (γ = 0), every other setting at "
           "its default (architecture gradient: leave-one-out score function, "
           "`adabert.arch_gradient=rloo`; a 20% warm-up of the weights with sampled ops), "
           f"seed {rs[0]['seed']}. Cost = the search's L_E of the derived architecture; "
           "accuracy = the derived architecture with the supernet's weights on the 256 "
           "held-out rows (0.5 = chance).", "",
           "| search steps | search | β | cells | conv 3/5/7 among the kept edges | derived cell "
           "| cost | held-out accuracy | search time (s) |",
           "|---|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for r in rs:
        how = _syn_setting(r)
        for row in r["rows"]:
            g = row["architecture"]
            cell = "; ".join(", ".join(f"{op}←{i}" for i, op in node) for node in g["nodes"])
            aware = row.get("order_aware", row["convs"])
            cost = f"{row['cost']:.4f}" if "cost" in row else "–"
            acc = f"{row['heldout_accuracy']:.2f}" if "heldout_accuracy" in row else "–"
            out.append(f"| {r['steps']} | {how} | {row['beta']:g} | {g['cells']} | {aware} of "
                       f"{row['edges']} | {cell} | {cost} | {acc} | {row['seconds']:.0f} |")
        by = {row["beta"]: row for row in r["rows"]}
        if 4.0 in by and 100.0 in by:
            met = by[4.0].get("order_aware", 0) >= 1 and by[100.0]["convs"] == 0
            costs = [row["cost"] for _, row in sorted(by.items()) if "cost" in row]
            mono = all(a >= b for a, b in zip(costs, costs[1:]))
            verdicts.append(f"{r['steps']} steps ({how}): "
                            + ("**met**" if met else "**not met**")
                            + (" (β = 4 keeps pools and identity)"
                               if by[4.0].get("order_aware", 0) == 0 else "")
                            + ("; the cost never rises with β" if mono else
                               "; **the cost rises with β somewhere**"))
    if verdicts:
        out += ["", "Target (issue 30: a convolution at the default β = 4, identity/pools at "
                "β = 100): " + "; ".join(verdicts) + ". Before the leave-one-out architecture "
                "gradient (the straight-through Gumbel one) no search kept a convolution at any "
                "β > 0 tried, at 300 steps as at 1,500: that gradient measured 2-6× smaller "
                "(τ 0.2-1) than the gradient of the expected loss, while the cost term's is "
                "exact (the reasons and figures are in "
                "`lmdistill/methods/adabert/objective.py`). At 300 "
                "steps the convolutions are not trained enough with sampled ops in the "
                "warm-up; the soft warm-up trains every op at every step, at ~20× the cost of "
                "a sampled step on the default supernet."]
    out += [""] + [f"Command: `{r['command']}`." for r in rs] + [machines_line(rs), ""]
    return out
