"""Constants of the report modules."""

from __future__ import annotations

import logging

log = logging.getLogger("lmdistill.report")

DPI = 90
#: keys of train records that are not loss terms
NON_LOSS_KEYS = {"type", "step", "epoch", "lr", "ex_per_s", "grad_norm"}
#: prefixes of train-record keys that are not loss terms (multi-teacher weights)
NON_LOSS_PREFIXES = ("w_teacher",)
#: keys of eval records that are not metrics
NON_METRIC_KEYS = {"type", "step", "epoch"}
#: metric names recognised in ``metrics.json`` even when the log has no eval record
KNOWN_METRICS = ("accuracy", "f1", "mcc", "pearson", "spearman", "mse", "mae")
LOWER_IS_BETTER = {"loss", "mse", "mae"}
