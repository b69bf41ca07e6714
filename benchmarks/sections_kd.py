"""BENCHMARKS.md sections: KD against no-KD with the defaults, the defaults' neighbours, CLINC150."""

from __future__ import annotations

import math
import statistics

from render_common import machines_line


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
    rows_all = [r for k, r in res.items() if k.startswith("kdclinc_") and "row" in r
                and r.get("schedule", "fixed") == "fixed" and r.get("init", "teacher") == "teacher"]
    rows_new = [r for k, r in res.items() if k.startswith("kdclinc_") and "row" in r
                and r not in rows_all]
    if not teachers or not (rows_all or rows_new):
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
    out += kdclinc_default_schedule(rows_new, teachers)
    out += ["", machines_line(rows_all + rows_new + list(teachers.values())), ""]
    return out


def kdclinc_default_schedule(rows: list[dict], teachers: dict) -> list[str]:
    """Issue 26: the rows of ``kd_clinc.py --init pretrained --schedule default`` — a student
    from minilm-l6's pretrained layers (not the teacher's), distill's default schedule (until
    neither dev accuracy nor teacher agreement improved for 2 epochs, at most 10), no-KD with
    the same epochs and patience on dev accuracy."""
    if not rows:
        return []
    out = ["", "### The default schedule, a student from the pretrained encoder", "",
           "Issue 26: with a fixed 3 epochs, a 3-layer student that cannot start from the "
           "teacher's own layers reached 93% of this teacher. Here the student is minilm-l6's "
           "first-3-layer subset with a fresh head (the same start for KD and no-KD), trained "
           "with `distill`'s default schedule: every epoch evaluated, stopped when neither dev "
           "accuracy nor agreement with the teacher improved for 2 epochs, at most 10 epochs "
           "(no-KD: the same, on dev accuracy).", "",
           "| teacher | student | test accuracy | retention (test) | seeds | epochs run | "
           "why it stopped | command |", "|---|---|---|---|---|---|---|---|"]
    for tag, t in sorted(teachers.items()):
        for row, label in KDCLINC_ROWS:
            rs = sorted((r for r in rows if r.get("teacher_tag", "") == tag and r["row"] == row),
                        key=lambda r: r["seed"])
            if not rs:
                continue
            acc = [r["test_accuracy"] for r in rs]
            sd = f" ± {statistics.stdev(acc):.4f}" if len(acc) > 1 else ""
            epochs = ", ".join(f"{r['steps'] / math.ceil(r['train_examples'] / 32):.0f}"
                               for r in rs)  # batch 32
            why = "; ".join(sorted({  # patience met at the last epoch is the maximum too
                "early stop" if r.get("stopped", "").startswith("early")
                and r["steps"] < 10 * math.ceil(r["train_examples"] / 32)
                else "the 10-epoch maximum" for r in rs}))
            t_acc = rs[0].get("teacher_test_accuracy", t["test_accuracy"])  # its own teacher
            out.append(f"| lr {t.get('teacher_lr', 5e-5):g} (test {t_acc:.4f}) | "
                       f"{label} | {statistics.mean(acc):.4f}{sd} | "
                       f"{statistics.mean(acc) / t_acc:.1%} | "
                       f"{', '.join(str(r['seed']) for r in rs)} | {epochs} | {why} | "
                       f"`{rs[0]['command']}` |")
    return out
