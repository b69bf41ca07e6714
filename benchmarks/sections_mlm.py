"""BENCHMARKS.md sections: masked-LM teachers, multi-teacher MLM distillation, NLU after it."""

from __future__ import annotations

import statistics
from collections import defaultdict

from render_common import machine_line


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
