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

# The report code lives in load.py (runs, bench JSON, Pareto), figures.py (matplotlib) and
# render.py (tables, HTML, Markdown); this module keeps the import path.
from .figures import loss_figure, metrics_figure, pareto_figure  # noqa: F401
from .load import Run, bench_points, load_bench, load_run, pareto_front  # noqa: F401
from .render import auto_report, write_report  # noqa: F401
