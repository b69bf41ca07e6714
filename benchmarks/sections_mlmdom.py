"""BENCHMARKS.md section: multi-teacher masked-LM distillation with domain experts (issue 31,
``benchmarks/mlm_domains.py``)."""

from __future__ import annotations

import statistics
from collections import defaultdict

from render_common import machine_line

DOMAINS = ("reviews", "questions", "literature")
WEIGHTED = ("confidence", "entropy", "gold")


def _ms(v: list[float], scale: float = 100.0) -> str:
    if not v:
        return "—"
    sd = f" ± {scale * statistics.stdev(v):.1f}" if len(v) > 1 else ""
    return f"{scale * statistics.mean(v):.1f}{sd}"


def first_step(curve: list[dict], target: float) -> int | None:
    """The first evaluated step whose held-out accuracy reaches ``target``."""
    return next((p["step"] for p in curve if p["mlm_accuracy"] >= target - 1e-12), None)


def mlmdom_groups(res: dict) -> dict:
    """(setting, alpha) -> row -> seed -> result; no-KD rows join every alpha of a setting."""
    by: dict = defaultdict(lambda: defaultdict(dict))
    nokd = [r for k, r in res.items() if k.startswith("mlmdom_") and r.get("row") == "nokd"]
    for k, r in res.items():
        if k.startswith("mlmdom_") and "setting" in r and r["row"] != "nokd":
            by[(r["setting"], r["alpha"])][r["row"]][r["seed"]] = r
    for key in list(by):
        for r in nokd:
            if r["setting"] == key[0]:
                by[key]["nokd"][r["seed"]] = r
    return by


def steps_to_target(rows: dict) -> tuple[dict, dict]:
    """Per seed, the target (the best single-teacher row's final accuracy) and, per row, the
    first step reaching it (None: never)."""
    targets = {}
    for name, per in rows.items():
        if name.startswith("single-"):
            for s, r in per.items():
                targets[s] = max(targets.get(s, 0.0), r["final"]["mlm_accuracy"])
    reach = {name: {s: first_step(r["curve"], targets[s]) for s, r in per.items()
                    if s in targets} for name, per in rows.items()}
    return targets, reach


def mlmdom_verdict(rows: dict) -> str:
    """The issue's claim for one student setting and α, on the seeds every compared row has."""
    _, reach = steps_to_target(rows)
    singles = [n for n in rows if n.startswith("single-")]
    weighted = [n for n in WEIGHTED if n in rows]
    if not singles or not weighted or "uniform" not in rows or "nokd" not in rows:
        return "Claim: not measured yet (needs no-KD, the single teachers, uniform and a " \
               "weighting)."

    def final(n):
        return statistics.mean(r["final"]["mlm_accuracy"] for r in rows[n].values())

    best_single = max(singles, key=final)
    best_w = max(weighted, key=final)
    single_steps = [v for v in reach[best_single].values() if v is not None]
    w_steps = list(reach[best_w].values())
    fast = (single_steps and all(v is not None for v in w_steps)
            and statistics.mean(w_steps) <= 0.6 * statistics.mean(single_steps))
    vs_uni = 100 * (final(best_w) - final("uniform"))
    vs_nokd = 100 * (final(best_w) - final("nokd"))
    speed = (f"reaches {best_single}'s final accuracy at step "
             f"{statistics.mean(w_steps):.0f} vs {statistics.mean(single_steps):.0f}"
             if single_steps and all(v is not None for v in w_steps) else
             f"does not reach {best_single}'s final accuracy on every seed")
    ok = fast and vs_uni >= 1 and vs_nokd > 0
    return (f"Claim ({'holds' if ok else 'does not hold'} here): the best weighting "
            f"({best_w}) {speed} (target ≤ 60%: {'met' if fast else 'not met'}); "
            f"{vs_uni:+.1f} points over uniform (target ≥ +1: "
            f"{'met' if vs_uni >= 1 else 'not met'}) and {vs_nokd:+.1f} over no-KD.")


def mlmdom_section(res: dict) -> list[str]:
    teachers = {k: r for k, r in res.items() if k.startswith("mlmdom_teacher_")}
    by = mlmdom_groups(res)
    if not teachers and not by:
        return []
    out = ["## Masked-LM distillation from domain experts (issue 31)", "",
           "Three whole-model MLM teachers, each trained here on its own domain; students on "
           "the three domains as domains (`mlm:reviews|questions|literature`, each blocked "
           "and split as alone, so no teacher saw a held-out block), static masks shared by "
           "every row, the top-k cache keeping the tail mass and the gold logit. Held-out "
           "masked-token accuracy (%) at the last step, mean ± sd over seeds.", ""]
    if teachers:
        out += ["| teacher | base | steps | params | " + " | ".join(DOMAINS) + " | command |",
                "|---|---|---|---|" + "---|" * len(DOMAINS) + "---|"]
        for k, t in sorted(teachers.items()):
            out.append(f"| {t['teacher']} | {t['base']} | {t['steps']} | "
                       f"{t['params'] / 1e6:.1f}M | " + " | ".join(
                           f"{100 * t['study_heldout'][d]['accuracy']:.1f}" for d in DOMAINS)
                       + f" | `{t['command']}` |")
        out.append("")
    for (setting, alpha), rows in sorted(by.items(), key=lambda x: (x[0][0], x[0][1] or 0)):
        targets, reach = steps_to_target(rows)
        out += [f"**Student `{setting}`, α = {alpha:g} (soft weight; 1 − α on the gold "
                "tokens)**", "",
                "| row | seeds | accuracy | " + " | ".join(DOMAINS)
                + " | step reaching the best single teacher's final | command |",
                "|---|---|---|" + "---|" * len(DOMAINS) + "---|---|"]
        order = ["nokd"] + sorted(n for n in rows if n.startswith("single-")) + \
            [n for n in ("uniform", *WEIGHTED) if n in rows]
        for name in order:
            if name not in rows:
                continue
            per = rows[name]
            fin = [r["final"]["mlm_accuracy"] for r in per.values()]
            doms = [_ms([r["final"].get(f"mlm_accuracy_{d}") for r in per.values()
                         if r["final"].get(f"mlm_accuracy_{d}") is not None]) for d in DOMAINS]
            st = list(reach.get(name, {}).values())
            steps = ("—" if not st else ", ".join("never" if v is None else str(v) for v in st))
            first = next(iter(per.values()))
            out.append(f"| {name} | {len(per)} | {_ms(fin)} | " + " | ".join(doms)
                       + f" | {steps} | `{first['command']}` |")
        out += ["", mlmdom_verdict(rows), ""]
        nokd = rows.get("nokd", {})
        if teachers and nokd:
            counts = []
            for k, t in sorted(teachers.items()):
                d = t["teacher"]
                own = statistics.mean(r["final"][f"mlm_accuracy_{d}"] for r in nokd.values())
                ok = t["study_heldout"][d]["accuracy"] > own
                counts.append(f"{d} {100 * t['study_heldout'][d]['accuracy']:.1f} vs no-KD "
                              f"{100 * own:.1f} ({'counts' if ok else 'does not count'})")
            out += ["Teachers on their own domain against this setting's no-KD student: "
                    + "; ".join(counts) + ".", ""]
    out += mlmdom_nlu_section(res)
    first = next(iter(teachers.values()), None) or next(
        r for rows in by.values() for per in rows.values() for r in per.values())
    out += [f"Machine: {machine_line(first)}.", ""]
    return out


def mlmdom_nlu_section(res: dict) -> list[str]:
    """Item 5: the study's students fine-tuned on SST-2, MRPC and RTE (accuracy, mean ± sd over
    the study seeds), against the initial weights and the no-KD MLM student."""
    rows = [r for k, r in res.items() if k.startswith("mlmdomnlu_")]
    if not rows:
        return []
    by: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        by[r["setting"]][r["student"]][r["task"]].append(r["accuracy"])
    tasks = ("sst2", "mrpc", "rte")
    out = ["**After MLM distillation: the students fine-tuned with a fresh head** (dev "
           "accuracy %, mean ± sd over study seeds; same rows, steps, lr and seed per task)", ""]
    for setting, students in sorted(by.items()):
        out += [f"Student `{setting}`:", "", "| student | " + " | ".join(tasks) + " |",
                "|---|" + "---|" * len(tasks)]
        for st in ("init", "nokd", "uniform", *WEIGHTED):
            if st in students:
                out.append(f"| {st} | " + " | ".join(_ms(students[st].get(t, []))
                                                    for t in tasks) + " |")
        out.append("")
    out += [f"Command: `{rows[0]['command']}` (one unit per setting and seed).", ""]
    return out
