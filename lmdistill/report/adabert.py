"""The AdaBERT part of a ``lmdistill search`` report: the found cell as a diagram and the
search curves (loss terms, sampled and expected depth, Gumbel temperature)."""

from __future__ import annotations

import html
import json
from pathlib import Path

from .figures import _new_figure, _png, _series


def cell_figure(genotype: dict) -> bytes:
    """A cell's DAG: the two inputs, the intermediate nodes, the output; edges labelled with
    their operations."""
    nodes = genotype["nodes"]
    n = len(nodes)
    fig, (ax,) = _new_figure(7.5, 1.6 + 0.9 * n)
    pos = {0: (0.0, 0.75), 1: (0.0, 0.25)}
    for j in range(n):
        pos[2 + j] = (1.0 + j, 0.5 + (0.3 if j % 2 else -0.3) * (j > 0))
    out_xy = (n + 1.0, 0.5)
    labels = {0: "c_{k-2}", 1: "c_{k-1}", **{2 + j: f"node {j}" for j in range(n)}}
    for j, node in enumerate(nodes):
        for i, op in node:
            (x0, y0), (x1, y1) = pos[int(i)], pos[2 + j]
            ax.annotate("", (x1, y1), (x0, y0),
                        arrowprops=dict(arrowstyle="->", color="#3b6ea8", lw=1.4,
                                        shrinkA=14, shrinkB=14))
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.04, op, ha="center", fontsize=8,
                    color="#7a2e2e")
        ax.annotate("", out_xy, pos[2 + j], arrowprops=dict(arrowstyle="->", color="#999999",
                                                            lw=0.8, ls="--", shrinkA=14,
                                                            shrinkB=14))
    for k, (x, y) in pos.items():
        ax.text(x, y, labels[k], ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round", fc="#eef3fa" if k < 2 else "#fdf6e3", ec="#555"))
    ax.text(*out_xy, "attention\nover nodes → c_k", ha="center", va="center", fontsize=8,
            bbox=dict(boxstyle="round", fc="#e8f5e9", ec="#555"))
    ax.set_xlim(-0.5, n + 1.7)
    ax.set_ylim(0.0, 1.0)
    ax.axis("off")
    ax.set_title(f"searched cell (×{genotype['cells']} cells)", fontsize=10)
    return _png(fig)


def search_figure(records: list[dict]) -> bytes | None:
    train = [r for r in records if r.get("type") == "train"]
    if not train:
        return None
    fig, axes = _new_figure(10, 3.4, ncols=3)
    for key in ("loss", "ce", "kd", "eff", "arch_loss"):
        xs, ys = _series(train, key)
        if xs:
            axes[0].plot(xs, ys, label=key, lw=1)
    axes[0].set_title("loss terms", fontsize=9)
    axes[0].legend(fontsize=7)
    for key in ("depth", "expected_depth"):
        xs, ys = _series(train, key)
        if xs:
            axes[1].plot(xs, ys, label=key, lw=1, marker="." if key == "depth" else None)
    axes[1].set_title("depth (sampled, expected)", fontsize=9)
    axes[1].legend(fontsize=7)
    xs, ys = _series(train, "gumbel_tau")
    axes[2].plot(xs, ys, lw=1)
    axes[2].set_title("Gumbel temperature", fontsize=9)
    for ax in axes:
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    return _png(fig)


def write_search_report(out_dir: str | Path) -> dict:
    """The standard report of the retrain and search runs plus the AdaBERT section."""
    from .render import write_pipeline_report

    out = Path(out_dir)
    arch = out / "architecture.json"
    search_log = next(iter(sorted((out / "stages").glob("*-search/metrics.jsonl"))), None)
    recs = ([json.loads(x) for x in search_log.read_text().splitlines() if x.strip()]
            if search_log else [])
    figs = [("cell.png", "The searched cell",
             cell_figure(json.loads(arch.read_text())) if arch.exists() else None),
            ("search_curves.png", "Search curves", search_figure(recs))]
    md = ["```json", arch.read_text().strip(), "```", ""] if arch.exists() else []
    hp = [f"<pre>{html.escape(arch.read_text())}</pre>"] if arch.exists() else []
    return write_pipeline_report(out, f"lmdistill search — {out.name}", "AdaBERT", figs, md, hp)
