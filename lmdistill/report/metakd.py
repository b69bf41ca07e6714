"""The Meta-KD part of a ``lmdistill metakd`` report: per-domain bars for every method."""

from __future__ import annotations

from pathlib import Path

from .figures import _new_figure, _png

ORDER = ("metakd", "single", "mixed", "multitask", "nokd")


def domain_bars(summary: dict) -> bytes | None:
    table = summary.get("per_domain") or {}
    methods = [m for m in ORDER if m in table]
    if not methods:
        return None
    domains = sorted({d for m in methods for d in table[m]}) + ["average"]
    fig, (ax,) = _new_figure(8.5, 3.8)
    width = 0.8 / len(methods)
    for k, m in enumerate(methods):
        vals = [table[m].get(d, float("nan")) for d in domains[:-1]] + [summary["average"][m]]
        xs = [i + (k - (len(methods) - 1) / 2) * width for i in range(len(domains))]
        ax.bar(xs, vals, width, label=m)
    ax.set_xticks(range(len(domains)), domains, fontsize=8)
    lo = min(v for m in methods for v in table[m].values())
    ax.set_ylim(max(0.0, lo - 0.1), 1.0)
    ax.set_ylabel(summary.get("primary", "metric"), fontsize=8)
    ax.legend(fontsize=7, ncol=len(methods))
    st = summary.get("setting", {})
    ax.set_title(f"students per target domain (target fraction {st.get('fraction')}, "
                 f"no in-domain data: {st.get('no_in_domain')})", fontsize=9)
    return _png(fig)


def write_metakd_report(out_dir: str | Path, summary: dict) -> dict:
    from .render import write_pipeline_report

    out = Path(out_dir)
    table = summary.get("per_domain") or {}
    methods = [m for m in ORDER if m in table]
    domains = sorted({d for m in methods for d in table[m]})
    md = ["| method | " + " | ".join(domains) + " | average |",
          "|" + "---|" * (len(domains) + 2),
          *[f"| {m} | " + " | ".join(f"{table[m].get(d, float('nan')):.4f}" for d in domains)
            + f" | {summary['average'][m]:.4f} |" for m in methods], ""] if methods else []
    return write_pipeline_report(out, f"lmdistill metakd — {out.name}",
                                 "Meta-KD: students per domain",
                                 [("domains.png", "per-domain bars", domain_bars(summary))], md)
