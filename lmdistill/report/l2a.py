"""The L2A part of a ``lmdistill l2a`` report: reward, kept fraction and the held-out target
metric per round."""

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


def write_l2a_report(out_dir: str | Path, summary: dict) -> dict:
    from .render import write_pipeline_report

    out = Path(out_dir)
    return write_pipeline_report(out, f"lmdistill l2a — {out.name}", "L2A rounds",
                                 [("rounds.png", "rounds", rounds_figure(summary))])
