"""Run reports: ``write_report`` (HTML + Markdown), ``auto_report`` (end-of-run hook),
``pareto_front`` (accuracy-vs-latency front). Imports matplotlib only when plotting."""

from .build import auto_report, load_run, pareto_front, write_report

__all__ = ["auto_report", "load_run", "pareto_front", "write_report"]
