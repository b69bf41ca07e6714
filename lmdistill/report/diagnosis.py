"""The report's "Did distillation help?" section for ``distill`` runs: teacher vs student vs
the no-KD reference, agreement and KL to the teacher (first and last evaluation), a one-line
verdict, and the teacher's reliability diagram (:mod:`lmdistill.methods.kd.diagnosis` logs
the figures; the memorised-teacher note both show is defined here)."""

from __future__ import annotations

from ..data.metrics import metric_mode
from .load import Run, _num

#: teacher_train − teacher_dev (primary metric) from which the teacher counts as having
#: memorised its transfer rows
MEMORISED_GAP = 0.05


def memorised_note(train: float | None, dev: float | None, metric: str) -> str | None:
    """The diagnosis the log and the report share: a sentence when the teacher does
    ``MEMORISED_GAP`` or more better on its training rows than on dev (higher-is-better
    metrics), else None."""
    if train is None or dev is None or metric_mode(metric) != "max":
        return None
    if train - dev < MEMORISED_GAP:
        return None
    return (f"the teacher fits its training rows far better than new text ({metric} "
            f"{train:.4f} there vs {dev:.4f} on dev): on those rows its soft targets lean "
            "towards the gold labels it was fitted to; text beyond them (--unlabelled FILE, "
            "kd.augment) shows the student what it does on new text")


def has_diagnosis(run: Run) -> bool:
    return "teacher_dev" in run.summary


def _primary(run: Run) -> str | None:
    names = run.metric_names()
    return names[0] if names else None


def verdict(run: Run) -> str:
    """One sentence: did KD beat the no-KD reference (when there is one), and how far is
    the student from its teacher?"""
    s, metric = run.summary, _primary(run)
    student = _num(s.get(metric)) if metric else None
    teacher = _num((s.get("teacher_dev") or {}).get(metric)) if metric else None
    if student is None:
        return "no final metric to judge"
    parts = []
    ref = s.get("nokd_reference") or {}
    rv = _num(ref.get("value"))
    if rv is not None:
        d = student - rv
        parts.append(f"KD {'helped' if d > 0 else 'did not help'}: {metric} {student:.4f} vs "
                     f"{rv:.4f} without KD ({d:+.4f})")
    else:
        parts.append(f"{metric} {student:.4f} (no no-KD reference: set kd.reference to a "
                     "finetune run of the same student to compare)")
    if teacher is not None:
        parts.append(f"the teacher has {teacher:.4f}"
                     + (f", so {100 * student / teacher:.1f}% retained" if teacher else ""))
        if rv is not None and teacher - rv < 0.02:
            parts.append("the teacher is less than 2 points above the no-KD student, so KD has "
                         "little to add")
    note = memorised_note(_num((s.get("teacher_train") or {}).get(metric)), teacher, metric) \
        if metric else None
    if note:
        parts.append(note)
    return "; ".join(parts)


def _tau(tau: float | None, fit: float | None) -> str:
    """The τ a run used; under kd.temperature=auto, where the fit fell outside the allowed
    range, the unclamped fit beside it."""
    if tau is None:
        return "–"
    if fit is None or abs(fit - tau) < 1e-9:
        return f"{tau:g}"
    return f"{tau:g} (fit {fit:.3g}, clamped)"


def rows(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    head = ["run", "metric", "teacher", "teacher on train", "student", "no-KD", "Δ vs no-KD",
            "agreement",
            "KL to teacher (first → last eval)", "teacher ECE", "τ"]
    out = []
    for run in runs:
        s, m = run.summary, _primary(run)
        t = _num((s.get("teacher_dev") or {}).get(m))
        st = _num(s.get(m))
        ref = _num((s.get("nokd_reference") or {}).get("value"))
        kl = [v for r in run.evals if (v := _num(r.get("kl_to_teacher"))) is not None]
        cal = s.get("teacher_calibration") or {}
        tau = _num(s.get("kd_temperature"))
        if tau is None:
            tau = _num(((run.config.get("kd") or {}).get("temperature")))

        def f(v):
            return "–" if v is None else f"{v:.4f}"

        fit = _num((s.get("teacher_train") or {}).get(m))
        out.append([run.name, m or "–", f(t), f(fit), f(st), f(ref),
                    "–" if ref is None or st is None else f"{st - ref:+.4f}",
                    f(_num(s.get("teacher_agreement"))),
                    f"{kl[0]:.4f} → {kl[-1]:.4f}" if kl else "–",
                    f(_num(cal.get("ece"))), _tau(tau, _num(cal.get("tau_fit")))])
    return head, out


def reliability_figure(run: Run) -> bytes | None:
    """The teacher's reliability diagram on the dev rows (accuracy against confidence per
    bin; the diagonal is perfect calibration), with the fitted-τ curve under kd.temperature
    = auto."""
    cal = run.summary.get("teacher_calibration") or {}
    bins = cal.get("reliability")
    if not bins:
        return None
    from .figures import _new_figure, _png

    fig, (ax,) = _new_figure(4.6, 4.2)
    ax.plot([0, 1], [0, 1], color="#8c8c8c", linestyle="--", linewidth=1, label="calibrated")
    series = [("τ = 1", bins, "#1f77b4", cal.get("ece"))]
    if cal.get("reliability_fit"):
        tau = run.summary.get("kd_temperature")
        series.append((f"τ = {tau:g} (fitted)", cal["reliability_fit"], "#d62728",
                       cal.get("ece_fit")))
    for label, bs, color, ece in series:
        ax.plot([b["confidence"] for b in bs], [b["accuracy"] for b in bs], marker="o",
                color=color, label=label + (f", ECE {ece:.3f}" if ece is not None else ""))
    ax.set_xlabel("teacher confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"Teacher reliability — {run.name} ({cal.get('rows', '?')} dev rows)",
                 fontsize=10)
    return _png(fig)
