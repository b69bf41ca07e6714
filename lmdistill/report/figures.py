"""The report's figures (matplotlib, imported only here and only when plotting): loss curves,
dev metrics over steps, accuracy vs latency."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable


from .common import DPI
from .load import BenchPoint, Run, _num


# ------------------------------------------------------------------ figures
@dataclass
class Figure:
    name: str  # file name, e.g. "loss_run1.png"
    title: str
    png: bytes


def _new_figure(width: float = 7.5, height: float = 3.8, ncols: int = 1):
    from matplotlib.figure import Figure as MplFigure  # no pyplot: no global backend state

    fig = MplFigure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _series(recs: Iterable[dict], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in recs:
        x, y = _num(r.get("step")), _num(r.get(key))
        if x is not None and y is not None:
            xs.append(x)
            ys.append(y)
    return xs, ys


def loss_figure(run: Run) -> bytes | None:
    """Every loss term of the train records over steps, one line per term."""
    terms = run.loss_terms()
    if not terms:
        return None
    fig, (ax,) = _new_figure()
    lo, hi = math.inf, -math.inf
    for t in terms:
        xs, ys = _series(run.train, t)
        if xs:
            ax.plot(xs, ys, label=t, linewidth=1.6 if t == "loss" else 1.1,
                    marker="o" if len(xs) == 1 else None)
            lo, hi = min(lo, *ys), max(hi, *ys)
    if lo > 0 and hi / lo > 100:  # terms on very different scales
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"Training loss — {run.name}", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return _png(fig)


def metrics_figure(runs: list[Run]) -> bytes | None:
    """Each dev metric over steps, one panel per metric, runs overlaid."""
    names: list[str] = []
    for run in runs:
        names += [m for m in run.metric_names() if m not in names]
    if not names:
        return None
    ncols = min(len(names), 3)
    nrows = math.ceil(len(names) / ncols)
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(min(4.2 * ncols, 12.5), 3.4 * nrows), dpi=DPI,
                    layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, metric in zip(axes, names):
        for run in runs:
            xs, ys = _series(run.evals, metric)
            if xs:
                ax.plot(xs, ys, marker="o", markersize=4, label=run.name)
        ax.set_title(metric, fontsize=11)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if len(runs) > 1 or len(labels) > 1:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4),
                   fontsize=9)
    fig.suptitle("Dev metrics", fontsize=12)
    return _png(fig)


def pareto_figure(points: list[BenchPoint], front: list[str], batch_size: int | None,
                  task: str | None) -> bytes | None:
    """Accuracy vs p50 latency (log x), Pareto front connected and bold."""
    pts = [p for p in points if p.latency is not None and p.accuracy is not None]
    if not pts:
        return None
    fig, (ax,) = _new_figure(7.5, 4.4)
    on = [p for p in pts if p.label in front]
    off = [p for p in pts if p.label not in front]
    if off:
        ax.scatter([p.latency for p in off], [p.accuracy for p in off], s=40, color="#8c8c8c",
                   label="dominated", zorder=2)
    on.sort(key=lambda p: (p.latency, -p.accuracy))
    ax.plot([p.latency for p in on], [p.accuracy for p in on], color="#d62728", linewidth=1.8,
            marker="o", markersize=9, markeredgecolor="black", markeredgewidth=1.2,
            label="Pareto front", zorder=3)
    for p in pts:
        ax.annotate(p.label, (p.latency, p.accuracy), textcoords="offset points",
                    xytext=(6, 5), fontsize=9,
                    fontweight="bold" if p.label in front else "normal")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_locator(LogLocator(subs=(2, 3, 5)))
    ax.xaxis.set_minor_formatter(plain)
    ax.margins(x=0.15, y=0.12)
    bs = f" (batch {batch_size})" if batch_size else ""
    ax.set_xlabel(f"p50 latency per batch, ms{bs} — log scale")
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy vs latency" + (f" — {task}" if task else ""), fontsize=11)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9, loc="lower right")
    return _png(fig)
