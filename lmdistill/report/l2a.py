"""The L2A part of a ``lmdistill l2a`` report: reward, kept fraction and the held-out target
metric per round, and what the selector learned (keep probabilities of the candidates that
help and of those that hurt, the influence of the kept and the dropped ones, the feature
weights)."""

from __future__ import annotations

from pathlib import Path

from .figures import _new_figure, _png


def rounds_figure(summary: dict) -> bytes | None:
    rs = summary.get("rounds") or []
    if not rs:
        return None
    fig, axes = _new_figure(10, 3.2, ncols=3)
    xs = [r["round"] for r in rs]
    axes[0].plot(xs, [r["metric"] for r in rs], marker="o")
    axes[0].set_title(f"held-out target {summary.get('primary', 'metric')}", fontsize=9)
    rw = [(r["round"], r["reward"]) for r in rs if r.get("reward") is not None]
    if rw:
        axes[1].bar([x for x, _ in rw], [y for _, y in rw])
    axes[1].axhline(0, color="#999", lw=0.8)
    axes[1].set_title("reward (metric change)", fontsize=9)
    kf = [(r["round"], r["kept_fraction"]) for r in rs if r.get("kept_fraction") is not None]
    if kf:
        axes[2].plot([x for x, _ in kf], [y for _, y in kf], marker="o")
    axes[2].set_ylim(0, 1)
    axes[2].set_title("kept fraction of the candidates", fontsize=9)
    for ax in axes:
        ax.set_xlabel("round", fontsize=8)
        ax.tick_params(labelsize=7)
    return _png(fig)


def selector_table(summary: dict) -> list[str]:
    """Markdown rows: per round, the selector's keep probability for helpful (influence > 0)
    and harmful candidates, the mean influence of the kept and dropped ones, and the weights
    per feature."""
    rows = [r for r in summary.get("rounds") or [] if isinstance(r.get("selector"), dict)
            and "keep_prob_helpful" in r["selector"]]
    if not rows:
        return []

    def f(x, fmt="{:.3f}"):
        return "—" if x is None else fmt.format(x)

    names = rows[0]["selector"].get("features") or [
        f"f{i}" for i in range(len(rows[0]["selector"]["weights"]))]
    out = ["| round | P(keep) helpful | P(keep) harmful | influence kept | influence dropped "
           "| " + " | ".join(f"w {n}" for n in names) + " |",
           "|---" * (5 + len(names)) + "|"]
    for r in rows:
        s = r["selector"]
        out.append(f"| {r['round']} | {f(s['keep_prob_helpful'])} | "
                   f"{f(s['keep_prob_harmful'])} | {f(s.get('influence_kept'), '{:.2e}')} | "
                   f"{f(s.get('influence_dropped'), '{:.2e}')} | "
                   + " | ".join(f"{w:+.2f}" for w in s["weights"]) + " |")
    return out


def write_l2a_report(out_dir: str | Path, summary: dict) -> dict:
    from .render import write_pipeline_report

    out = Path(out_dir)
    table = selector_table(summary)
    return write_pipeline_report(out, f"lmdistill l2a — {out.name}", "L2A rounds",
                                 [("rounds.png", "rounds", rounds_figure(summary))],
                                 markdown=(["What the selector learned, per round:", "", *table,
                                            ""] if table else []))
