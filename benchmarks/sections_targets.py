"""BENCHMARKS.md section: the targets at a glance."""

from __future__ import annotations

import statistics

from sections_adabert import adabert_sst2_target
from sections_kd import kdvs_cells, kdvs_groups
from sections_l2a import l2a_by_seed, l2a_cells, l2a_groups


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
    # a row whose prior weight was chosen on an evaluation set (SE07 is part of ALL) does not
    # count for the target: nothing may be tuned on an evaluation set
    evalsets = ("SE2", "SE3", "SE07", "SE13", "SE15", "ALL")
    studs = [(k[4:], r) for k, r in res.items() if k.startswith(("wsd_student", "wsd_prior_st"))
             and "ALL" in r.get("prior_tuned", r)["sets"]
             and r.get("prior_tuned", {}).get("dev") not in evalsets]
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
    for (setting, frac, cands, gen), rs in sorted(by.items()):
        smallest = min(f for s_, f, c, g in by if s_ == setting and c == cands and g == gen)
        l2a, t = l2a_by_seed(rs, "l2a"), l2a_by_seed(rs, "teacher")
        both = sorted(set(l2a) & set(t))
        if cands == 64 and frac == smallest and both:
            ms, mt = (100 * statistics.mean(d[s_] for s_ in both) for d in (l2a, t))
            row(f"L2A student matches the teacher at the smallest target size ({setting} "
                f"{frac:g}{f', generator {gen} steps' if gen else ''})", f"{ms:.1f} vs teacher {mt:.1f} ({len(both)} seeds)", ms >= mt)
    out.append("")
    return out if len(out) > 5 else []
