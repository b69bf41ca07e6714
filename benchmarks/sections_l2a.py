"""BENCHMARKS.md section: L2A."""

from __future__ import annotations

import statistics

from render_common import machine_line


L2A_ROWS = ("teacher", "none", "eda", "cbert", "source", "random", "generated-all", "l2a",
            "l2a-nosource", "l2a-notarget")
#: the baselines that could explain a gain (issue 29); "none" is not one of them
BASELINES = ("none", "eda", "cbert", "source", "random", "generated-all")


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
             for b in BASELINES if (v := l2a_by_seed(rs, b))}
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
    for (setting, frac, cands, gen), rs in sorted(by.items()):
        g = l2a_gaps(rs)
        if frac <= 0.1 and cands == 64 and g and g[1]:
            cells.append((f"{setting} {frac:g}" + (f" (generator {gen} steps)" if gen else ""),
                          statistics.mean(g[1]), len(g[1])))
    return cells


def l2a_groups(res: dict) -> dict:
    """L2A result rows per (setting, fraction, candidates), then per row name."""
    by: dict = {}
    for k, r in res.items():
        if k.startswith("l2a_"):
            by.setdefault((r["setting"], r["fraction"], r.get("candidates", 64),
                           r.get("generator_steps", 0)), {}).setdefault(r["row"], []).append(r)
    return by


def l2a_selector_lines(rs: dict) -> list[str]:
    """What the selector learned in the real runs: per round (mean over seeds), the keep
    probability of candidates whose influence reward was positive and of the others, and the
    mean influence of the kept and of the dropped ones."""
    runs = rs.get("l2a", [])
    per: dict[int, list] = {}
    for r in runs:
        for rd in r.get("rounds", []):
            sel = rd.get("selector") or {}
            if sel.get("keep_prob_helpful") is not None:
                per.setdefault(rd["round"], []).append(sel)
    if not per:
        return []

    def m(xs, key, scale=1.0):
        v = [x[key] for x in xs if x.get(key) is not None]
        return f"{scale * statistics.mean(v):.3f}" if v else "—"

    out = ["Selector (l2a row, mean over seeds): keep probability of helpful (influence > 0) "
           "and harmful candidates, and mean influence (×1000) of the kept and dropped ones.",
           "", "| round | helpful / pool | keep p helpful | keep p harmful | influence kept | "
           "influence dropped |", "|---|---|---|---|---|---|"]
    for rd, xs in sorted(per.items()):
        out.append(f"| {rd} | {m(xs, 'helpful')} | {m(xs, 'keep_prob_helpful')} | "
                   f"{m(xs, 'keep_prob_harmful')} | {m(xs, 'influence_kept', 1000)} | "
                   f"{m(xs, 'influence_dropped', 1000)} |")
    return out + [""]


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
    for (setting, frac, cands, gen), rs in sorted(by.items()):
        g = [r["generator"] for r in rs.get("l2a", []) if r.get("generator")]
        how = (f"the generator's MLM trained {gen} steps on source + target text (held-out "
               f"masked-token accuracy {statistics.mean(x['mlm_accuracy'] for x in g):.3f})"
               if gen and g else "the generator's MLM trained on WikiText-2")
        out += [f"**{setting}, {frac:g} of the target's training rows, {cands} generated "
                f"candidates a round, {how}**", "",
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
        out += ["", l2a_verdict(rs), ""] + l2a_selector_lines(rs)
    overall = l2a_overall(by)
    out += [overall, ""] if overall else []
    out += [f"Machine: {machine_line(rows[0])}.", ""]
    return out
