"""Tables and the documents: ``report.html`` (self-contained) and ``report.md``;
:func:`write_report` and the end-of-run :func:`auto_report`."""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path
from typing import Any

from ..errors import DataError
from . import diagnosis as D
from .common import log
from .load import (BenchPoint, Run, _batch_sizes, _names, _num, bench_points, load_bench,
                   load_run, pareto_front)
from .figures import Figure, loss_figure, metrics_figure, pareto_figure


# ------------------------------------------------------------------ tables
def _fmt(v: Any, kind: str = "") -> str:
    if v is None:
        return "–"
    if kind == "params":
        n = _num(v)
        if n is None:
            return "–"
        return f"{n / 1e6:.1f}M" if n >= 1e6 else (f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}")
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        if kind == "rate":
            return f"{v:,.1f}"
        return f"{v:.4f}"
    return str(v)


def summary_table(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    metric_cols: list[str] = []
    finals = [r.final_metrics() for r in runs]
    for f in finals:
        metric_cols += [k for k in f if k not in metric_cols]
    head = ["run", "kind", "task", "model"] + metric_cols + ["best step", "params",
                                                              "train ex/s"]
    rows = []
    for run, fin in zip(runs, finals):
        rows.append([run.name, _fmt(run.kind), _fmt(run.task), _fmt(run.model)]
                    + [_fmt(fin.get(k)) for k in metric_cols]
                    + [_fmt(run.best_step), _fmt(run.params, "params"),
                       _fmt(run.throughput, "rate")])
    return head, rows


def bench_table(bench: dict, points: list[BenchPoint], front: list[str]
                ) -> tuple[list[str], list[list[str]]]:
    bss = _batch_sizes(bench)
    head = ["model", "params", "params w/o emb", "size MB"]
    for bs in bss:
        head += [f"p50 ms @{bs}", f"speedup @{bs}"]
    head += [f"ex/s @{bss[-1]}" if bss else "ex/s", "compression", "accuracy", "Pareto"]
    rows = []
    for p in points:
        r = p.row
        cells = [p.label, _fmt(r.get("params"), "params"), _fmt(r.get("params_no_emb"), "params"),
                 _fmt(_num(r.get("size_mb")), "rate")]
        for bs in bss:
            b = r.get(f"batch{bs}") or {}
            lat, sp = _num(b.get("p50_ms")), _num(b.get("speedup"))
            cells += [f"{lat:.1f}" if lat is not None else "–",
                      f"{sp:.2f}×" if sp is not None else "–"]
        b = (r.get(f"batch{bss[-1]}") or {}) if bss else {}
        tp, comp = _num(b.get("throughput")), _num(r.get("compression"))
        cells += [f"{tp:,.0f}" if tp is not None else "–",
                  f"{comp:.2f}×" if comp is not None else "–",
                  _fmt(p.accuracy) + (" (from run)" if p.accuracy_source not in (None, "bench")
                                      else ""),
                  "★" if p.label in front else ""]
        rows.append(cells)
    return head, rows


def _md_cell(s: str) -> str:
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(map(_md_cell, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in rows]
    return "\n".join(lines)


_NUMERIC = re.compile(r"^(–|★|[-+]?[\d,]*\.?\d+(e[-+]?\d+)?[%×kMB]?( \(from run\))?)$")


def html_table(head: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead>",
           "<tbody>"]
    for r in rows:
        out.append("<tr>" + "".join(
            f'<td class="num">{e(c)}</td>' if _NUMERIC.match(c) else f"<td>{e(c)}</td>"
            for c in r) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


# ------------------------------------------------------------------ document
CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Helvetica,Arial,sans-serif;
 margin:0 auto;padding:24px 28px;color:#1f2328;background:#fff;line-height:1.45;max-width:1220px}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.25em;margin:28px 0 10px;
 border-bottom:1px solid #d0d7de;padding-bottom:4px}h3{font-size:1.05em;margin:18px 0 6px}
.sub{color:#57606a;margin:0 0 16px;font-size:.92em}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.9em;margin:6px 0 12px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;white-space:nowrap}
th{background:#f6f8fa;white-space:normal;vertical-align:bottom}td.num{text-align:right}
tbody tr:nth-child(even){background:#fafbfc}
figure{margin:10px 0 18px;display:inline-block;vertical-align:top}
figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:.85em;color:#57606a}
.note{color:#9a6700;font-size:.88em;margin:2px 0}
ul.front{margin:4px 0 8px}
details{margin:6px 0}summary{cursor:pointer;color:#0969da}
pre{background:#f6f8fa;padding:8px 10px;font-size:.82em;overflow-x:auto;max-height:420px}
"""


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "run"


def _figure_html(fig: Figure) -> str:
    b64 = base64.b64encode(fig.png).decode("ascii")
    t = html.escape(fig.title)
    return (f'<figure><img src="data:image/png;base64,{b64}" alt="{t}">'
            f"<figcaption>{t}</figcaption></figure>")


def _put_figure(H: list[str], M: list[str], f: Figure) -> None:
    """A figure into both documents (inline in the HTML, a file link in the Markdown)."""
    H.append(_figure_html(f))
    M += [f"![{f.title}]({f.name})", ""]


def write_report(run_dirs: list[str | Path] | str | Path, out_dir: str | Path | None = None,
                 bench_json: str | Path | None = None, title: str | None = None) -> dict:
    """Write ``report.html`` (self-contained) and ``report.md`` (+ its PNG figures).

    ``out_dir`` defaults to the run directory for one run, ``./report`` for several. The bench
    result is ``bench_json`` if given, else the first ``bench.json`` found in a run directory.
    Returns ``{"html": Path, "markdown": Path, "figures": [file names]}``.
    """
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise DataError("no run directory given")
    missing = [str(p) for p in paths if not p.is_dir()]
    if missing:
        raise DataError(f"run directory '{missing[0]}' does not exist")
    runs = [load_run(p, n) for p, n in zip(paths, _names(paths))]
    out = Path(out_dir) if out_dir is not None else (
        paths[0] if len(paths) == 1 else Path.cwd() / "report")
    out.mkdir(parents=True, exist_ok=True)

    bench, bench_src, notes = None, None, []
    if bench_json is not None:
        bench, bench_src = load_bench(bench_json), Path(bench_json)
    else:
        for run in runs:
            cand = run.path / "bench.json"
            if cand.is_file():
                try:
                    bench, bench_src = load_bench(cand), cand
                    break
                except DataError as e:
                    notes.append(str(e))

    if title is None:
        title = (f"lmdistill report — {runs[0].name}" if len(runs) == 1
                 else f"lmdistill report — {len(runs)} runs")

    figures: list[Figure] = []
    loss_figs: dict[str, Figure] = {}
    used: set[str] = set()
    try:
        import matplotlib  # noqa: F401
        have_mpl = True
    except ImportError:
        have_mpl = False
        notes.append("matplotlib is not installed: no figures (pip install matplotlib)")

    def add(name: str, title_: str, png: bytes | None) -> Figure | None:
        if png is None:
            return None
        base, n = name, 2
        while name in used:
            name = f"{base[:-4]}_{n}.png"
            n += 1
        used.add(name)
        f = Figure(name, title_, png)
        figures.append(f)
        return f

    if have_mpl:
        for run in runs:
            f = add(f"loss_{_slug(run.name)}.png", f"Training loss terms — {run.name}",
                    loss_figure(run))
            if f:
                loss_figs[run.name] = f
        metrics_fig = add("dev_metrics.png", "Dev metrics over steps" +
                          (" (runs overlaid)" if len(runs) > 1 else ""), metrics_figure(runs))
    else:
        metrics_fig = None
    diag_runs = [r for r in runs if D.has_diagnosis(r)]
    rel_figs = {r.name: add(f"reliability_{_slug(r.name)}.png",
                            f"Teacher reliability — {r.name}", D.reliability_figure(r))
                for r in diag_runs} if have_mpl else {}

    pareto, pareto_fig, points, bs = [], None, [], None
    if bench is not None:
        bs, points = bench_points(bench, runs)
        usable = [(p.label, p.latency, p.accuracy) for p in points]
        pareto = pareto_front(usable)
        if have_mpl:
            pareto_fig = add("pareto.png", "Accuracy vs latency — Pareto front",
                             pareto_figure(points, pareto, bs, bench.get("task")))

    for f in figures:
        (out / f.name).write_bytes(f.png)

    s_head, s_rows = summary_table(runs)
    e = html.escape
    H = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width, initial-scale=1">',
         f"<title>{e(title)}</title>", f"<style>{CSS}</style></head><body>",
         f"<h1>{e(title)}</h1>",
         f'<p class="sub">{len(runs)} run(s): ' + ", ".join(e(str(r.path)) for r in runs)
         + "</p>"]
    M = [f"# {title}", "", f"{len(runs)} run(s): " + ", ".join(f"`{r.path}`" for r in runs), ""]
    for n in notes:
        H.append(f'<p class="note">⚠ {e(n)}</p>')
        M += [f"> ⚠ {n}", ""]

    H += ["<h2>Summary</h2>", '<div class="scroll">', html_table(s_head, s_rows), "</div>"]
    M += ["## Summary", "", md_table(s_head, s_rows), ""]

    H.append("<h2>Training curves</h2>")
    M += ["## Training curves", ""]
    for run in runs:
        if len(runs) > 1:
            H.append(f"<h3>{e(run.name)}</h3>")
            M += [f"### {run.name}", ""]
        for n in run.notes:
            H.append(f'<p class="note">{e(run.name)}: {e(n)}</p>')
            M += [f"> {run.name}: {n}", ""]
        f = loss_figs.get(run.name)
        if f:
            _put_figure(H, M, f)
        elif have_mpl:
            H.append('<p class="note">no loss terms to plot</p>')
            M += ["_no loss terms to plot_", ""]

    H.append("<h2>Dev metrics</h2>")
    M += ["## Dev metrics", ""]
    if metrics_fig:
        _put_figure(H, M, metrics_fig)
    else:
        H.append('<p class="note">no evaluation records</p>')
        M += ["_no evaluation records_", ""]

    if diag_runs:
        d_head, d_rows = D.rows(diag_runs)
        H += ["<h2>Did distillation help?</h2>", '<div class="scroll">',
              html_table(d_head, d_rows), "</div>"]
        M += ["## Did distillation help?", "", md_table(d_head, d_rows), ""]
        for run in diag_runs:
            v = D.verdict(run)
            H.append(f"<p><b>{e(run.name)}</b>: {e(v)}.</p>")
            M += [f"**{run.name}**: {v}.", ""]
            f = rel_figs.get(run.name)
            if f:
                _put_figure(H, M, f)

    if bench is not None:
        b_head, b_rows = bench_table(bench, points, pareto)
        meta = (f"task {bench.get('task', '?')}, {bench.get('threads', '?')} thread(s), "
                f"batch sizes {', '.join(map(str, _batch_sizes(bench)))}; source {bench_src}")
        H += ["<h2>Speed and accuracy</h2>", f'<p class="sub">{e(meta)}</p>',
              '<div class="scroll">', html_table(b_head, b_rows), "</div>"]
        M += ["## Speed and accuracy", "", meta, "", md_table(b_head, b_rows), ""]
        no_acc = [p.label for p in points if p.accuracy is None]
        if pareto:
            desc = [f"{p.label} ({p.latency:.1f} ms, accuracy {p.accuracy:.4f})"
                    for lab in pareto for p in points if p.label == lab]
            H += [f"<h3>Pareto front (p50 latency @ batch {bs} vs accuracy)</h3>",
                  '<ul class="front">' + "".join(f"<li>{e(d)}</li>" for d in desc) + "</ul>"]
            M += [f"**Pareto front** (p50 latency @ batch {bs} vs accuracy; no other model is "
                  "both faster and more accurate):", ""] + [f"- {d}" for d in desc] + [""]
        if no_acc:
            msg = ("no accuracy for: " + ", ".join(no_acc) +
                   " (add an \"accuracy\" field to the bench JSON entries)")
            H.append(f'<p class="note">{e(msg)}</p>')
            M += [f"> {msg}", ""]
        if pareto_fig:
            _put_figure(H, M, pareto_fig)

    H.append("<h2>Configs</h2>")
    for run in runs:
        cfg = run.path / "config.yaml"
        text = cfg.read_text(errors="replace") if cfg.exists() else "(no config.yaml)"
        H.append(f"<details><summary>{e(run.name)} — config.yaml</summary>"
                 f"<pre>{e(text)}</pre></details>")
    H.append("</body></html>")

    html_path, md_path = out / "report.html", out / "report.md"
    html_path.write_text("\n".join(H) + "\n", encoding="utf-8")
    md_path.write_text("\n".join(M).rstrip() + "\n", encoding="utf-8")
    return {"html": html_path, "markdown": md_path, "figures": [f.name for f in figures]}


def auto_report(run_dir: str | Path) -> Path | None:
    """Write the report of one finished run into it; never raises (logs one warning line).

    Meant to be called at the end of ``finetune`` / ``distill`` (on the main process only).
    """
    try:
        return Path(write_report([run_dir])["html"])
    except Exception as e:  # noqa: BLE001 - a report must never break a finished run
        msg = str(e).splitlines()[0] if str(e) else ""
        log.warning("report for %s not written: %s: %s", run_dir, type(e).__name__, msg)
        return None


def write_pipeline_report(out_dir: str | Path, title: str, section: str,
                          figures: list[tuple[str, str, bytes | None]],
                          markdown: list[str] = (), html_parts: list[str] = ()) -> dict:
    """The report of a pipeline run (every stage with a log under ``out_dir/stages``) plus one
    method section: ``figures`` as ``(file name, title, png)`` (None: skipped), with extra
    Markdown lines / HTML fragments before them."""
    out = Path(out_dir)
    runs = sorted(p for p in (out / "stages").glob("*") if (p / "metrics.jsonl").exists())
    rep = write_report(runs, out_dir=out, title=title)
    md, h = ["", f"## {section}", "", *markdown], [f"<h2>{html.escape(section)}</h2>",
                                                   *html_parts]
    for name, fig_title, png in figures:
        if png is None:
            continue
        (out / name).write_bytes(png)
        md += [f"![{fig_title}]({name})", ""]
        h.append(f"<figure><img alt='{html.escape(fig_title)}' src='data:image/png;base64,"
                 f"{base64.b64encode(png).decode()}'><figcaption>{html.escape(fig_title)}"
                 "</figcaption></figure>")
        rep["figures"].append(name)
    rep["markdown"].write_text(rep["markdown"].read_text() + "\n".join(md) + "\n")
    text = rep["html"].read_text()
    rep["html"].write_text(text.replace("</body></html>", "\n".join(h) + "\n</body></html>"))
    return rep
