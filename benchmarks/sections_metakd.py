"""BENCHMARKS.md section: Meta-KD."""

from __future__ import annotations

import statistics
from collections import defaultdict

from render_common import machine_line


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
