"""``lmdistill report RUN_DIR...``: an HTML + Markdown report of one or several runs.

A run directory (written by ``lmdistill finetune`` / ``distill``) holds ``config.yaml``,
``metrics.jsonl`` (train and eval records), ``metrics.json`` (final summary) and ``model/``.
The report has a summary table, the training curves of every loss term, the dev metrics over
steps (runs overlaid) and, when a bench JSON (``lmdistill.bench.bench``) is given or a
``bench.json`` lies in a run directory, an accuracy-vs-latency scatter with its Pareto front.

``report.html`` is self-contained (figures as base64 PNG, inline CSS, no JS); ``report.md``
references the same figures written as PNG files next to it. Anything missing degrades to a
note: a run without evaluations still gets its loss curve, a run without logs a table row.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import DataError

log = logging.getLogger(__name__)

DPI = 90
#: keys of train records that are not loss terms
NON_LOSS_KEYS = {"type", "step", "epoch", "lr", "ex_per_s", "grad_norm"}
#: keys of eval records that are not metrics
NON_METRIC_KEYS = {"type", "step", "epoch"}
#: metric names recognised in ``metrics.json`` even when the log has no eval record
KNOWN_METRICS = ("accuracy", "f1", "mcc", "pearson", "spearman", "mse", "mae")
LOWER_IS_BETTER = {"loss", "mse", "mae"}


# ------------------------------------------------------------------ loading
def _num(v: Any) -> float | None:
    """A finite float, or None (bools, strings, NaN and inf are not numbers here)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


@dataclass
class Run:
    path: Path
    name: str
    config: dict = field(default_factory=dict)
    train: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str | None:
        return self.config.get("kind")

    @property
    def task(self) -> str | None:
        return self.summary.get("task") or (self.config.get("data") or {}).get("task")

    @property
    def model(self) -> str | None:
        """What was trained: the fine-tuned model, or ``student.kind ← teacher(s)``."""
        cfg = self.config
        if cfg.get("kind") == "distill" or "student" in cfg:
            teacher = cfg.get("teacher") or {}
            names = teacher.get("names") or ([teacher["name"]] if teacher.get("name") else [])
            student = (cfg.get("student") or {}).get("kind") or self.summary.get("student_kind")
            parts = [f"student {student}" if student else "student"]
            if names:
                parts.append("← " + ", ".join(map(str, names)))
            return " ".join(parts)
        return (cfg.get("model") or {}).get("name") or self.summary.get("model")

    def loss_terms(self) -> list[str]:
        terms: list[str] = []
        for r in self.train:
            for k, v in r.items():
                if k not in NON_LOSS_KEYS and k not in terms and _num(v) is not None:
                    terms.append(k)
        return terms

    def metric_names(self) -> list[str]:
        names: list[str] = []
        for r in self.evals:
            for k, v in r.items():
                if k not in NON_METRIC_KEYS and k not in names and _num(v) is not None:
                    names.append(k)
        return names

    def final_metrics(self) -> dict[str, float]:
        """Metrics of the best model: from ``metrics.json``, else the best eval record."""
        names = self.metric_names()
        if self.summary:
            keys = names + [k for k in KNOWN_METRICS if k not in names]
            out = {k: _num(self.summary.get(k)) for k in keys}
            out = {k: v for k, v in out.items() if v is not None}
            if out:
                return out
        best = self.best_eval()
        if best is None:
            return {}
        return {k: v for k in names if (v := _num(best.get(k))) is not None}

    def best_eval(self) -> dict | None:
        names = self.metric_names()
        if not names:
            return None
        primary = names[0]
        recs = [r for r in self.evals if _num(r.get(primary)) is not None]
        sign = -1 if primary in LOWER_IS_BETTER else 1
        return max(recs, key=lambda r: sign * r[primary]) if recs else None

    @property
    def best_step(self) -> int | None:
        if self.summary.get("best_step") is not None:
            return self.summary["best_step"]
        best = self.best_eval()
        return best.get("step") if best else None

    @property
    def params(self) -> int | None:
        for k in ("student_params", "params", "model_params"):
            if _num(self.summary.get(k)) is not None:
                return int(self.summary[k])
        return None

    @property
    def throughput(self) -> float | None:
        v = _num(self.summary.get("train_examples_per_s"))
        if v is None:  # fall back to the mean of the logged rates
            rates = [x for r in self.train if (x := _num(r.get("ex_per_s"))) is not None]
            v = sum(rates) / len(rates) if rates else None
        return v


def load_run(run_dir: str | Path, name: str | None = None) -> Run:
    """Read a run directory; missing or unreadable files become notes, not errors."""
    path = Path(run_dir)
    if not path.is_dir():
        raise DataError(f"run directory '{run_dir}' does not exist")
    run = Run(path=path, name=name or path.resolve().name)
    cfg = path / "config.yaml"
    if cfg.exists():
        try:
            import yaml

            loaded = yaml.safe_load(cfg.read_text())
            run.config = loaded if isinstance(loaded, dict) else {}
        except Exception as e:  # noqa: BLE001 - a report never fails on a bad file
            run.notes.append(f"config.yaml unreadable: {e}")
    else:
        run.notes.append("no config.yaml")
    log_path = path / "metrics.jsonl"
    if log_path.exists():
        bad = 0
        for line in log_path.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if not isinstance(rec, dict) or _num(rec.get("step")) is None:
                bad += 1
            elif rec.get("type") == "train":
                run.train.append(rec)
            elif rec.get("type") == "eval":
                run.evals.append(rec)
        if bad:
            run.notes.append(f"{bad} unreadable line(s) in metrics.jsonl skipped")
        run.train.sort(key=lambda r: r["step"])
        run.evals.sort(key=lambda r: r["step"])
    else:
        run.notes.append("no metrics.jsonl")
    if not run.train:
        run.notes.append("no training records")
    if not run.evals:
        run.notes.append("no evaluation records")
    summ = path / "metrics.json"
    if summ.exists():
        try:
            loaded = json.loads(summ.read_text())
            run.summary = loaded if isinstance(loaded, dict) else {}
        except ValueError as e:
            run.notes.append(f"metrics.json unreadable: {e}")
    else:
        run.notes.append("no metrics.json (run unfinished?)")
    return run


def _names(paths: list[Path]) -> list[str]:
    """Run names: the folder name, with parents added until names are unique."""
    parts = [p.resolve().parts for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


# ------------------------------------------------------------------ bench / Pareto
def pareto_front(points: list[tuple[str, float, float]]) -> list[str]:
    """Labels of the points ``(label, latency, accuracy)`` no other point dominates.

    ``a`` dominates ``b`` when it is at least as fast and at least as accurate, and strictly
    better in one of the two. Identical points do not dominate each other (both stay). Points
    with a missing or non-finite value are ignored. Returned in order of increasing latency
    (then decreasing accuracy, then input order).
    """
    pts = [(i, lab, float(lat), float(acc)) for i, (lab, lat, acc) in enumerate(points)
           if _num(lat) is not None and _num(acc) is not None]
    front = []
    for i, lab, lat, acc in pts:
        dominated = any(
            lat2 <= lat and acc2 >= acc and (lat2 < lat or acc2 > acc)
            for j, _, lat2, acc2 in pts if j != i)
        if not dominated:
            front.append((lat, -acc, i, lab))
    return [lab for *_, lab in sorted(front)]


@dataclass
class BenchPoint:
    label: str
    latency: float | None  # p50 ms at the largest batch size
    accuracy: float | None
    accuracy_source: str | None
    row: dict


def _batch_sizes(bench: dict) -> list[int]:
    bss = bench.get("batch_sizes")
    if not bss:
        bss = sorted({int(m.group(1)) for r in bench.get("models", []) for k in r
                      if (m := re.fullmatch(r"batch(\d+)", k))})
    return [int(b) for b in bss]


def bench_points(bench: dict, runs: list[Run] = ()) -> tuple[int | None, list[BenchPoint]]:
    """``(largest batch size, points)`` of a bench result. A model without ``accuracy`` takes
    the accuracy of the run whose ``model/`` folder (or run folder) it was benchmarked from."""
    bss = _batch_sizes(bench)
    bs = max(bss) if bss else None
    by_model: dict[Path, Run] = {}
    for run in runs:
        for p in (run.path, run.path / "model"):
            by_model[p.resolve()] = run
    pts = []
    for r in bench.get("models", []):
        if not isinstance(r, dict):
            continue
        lat = _num((r.get(f"batch{bs}") or {}).get("p50_ms")) if bs else None
        acc, src = _num(r.get("accuracy")), "bench"
        if acc is None:
            src = None
            ref = r.get("model")
            if isinstance(ref, str):
                try:
                    run = by_model.get(Path(ref).resolve())
                except OSError:
                    run = None
                if run is not None and _num(run.summary.get("accuracy")) is not None:
                    acc, src = float(run.summary["accuracy"]), f"run {run.name}"
        if lat is not None and lat <= 0:
            lat = None
        pts.append(BenchPoint(str(r.get("label", r.get("model", "?"))), lat, acc, src, r))
    return bs, pts


def load_bench(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"bench JSON '{path}' does not exist")
    try:
        data = json.loads(p.read_text())
    except ValueError as e:
        raise DataError(f"bench JSON '{path}' is not valid JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise DataError(f"bench JSON '{path}' has no 'models' list (expected the output of "
                        "lmdistill.bench.bench)")
    return data


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
            H.append(_figure_html(f))
            M += [f"![{f.title}]({f.name})", ""]
        elif have_mpl:
            H.append('<p class="note">no loss terms to plot</p>')
            M += ["_no loss terms to plot_", ""]

    H.append("<h2>Dev metrics</h2>")
    M += ["## Dev metrics", ""]
    if metrics_fig:
        H.append(_figure_html(metrics_fig))
        M += [f"![{metrics_fig.title}]({metrics_fig.name})", ""]
    else:
        H.append('<p class="note">no evaluation records</p>')
        M += ["_no evaluation records_", ""]

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
            H.append(_figure_html(pareto_fig))
            M += [f"![{pareto_fig.title}]({pareto_fig.name})", ""]

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
