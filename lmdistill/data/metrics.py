"""Evaluation metrics for classification and regression tasks.

:func:`compute` takes metric names (see :data:`METRICS`), predictions and gold labels and returns
``{name: python float}``. Classification metrics expect class ids; a 2-D ``(n, num_classes)``
array of scores/logits is accepted too and reduced with ``argmax``. Regression metrics expect
floats (an ``(n, 1)`` array is flattened). Lists, NumPy arrays and CPU torch tensors all work.

=============  ==========================================================================
name           definition
=============  ==========================================================================
accuracy       fraction of exact matches
f1             binary F1 of the positive class 1: ``2TP / (2TP + FP + FN)`` (0.0 if undefined)
macro_f1       unweighted mean of the per-class F1 over the classes present in preds or labels
mcc            Matthews correlation coefficient (multi-class generalisation for > 2 classes)
pearson        Pearson correlation coefficient r
spearman       Spearman rank correlation rho
=============  ==========================================================================

Degenerate inputs never crash and never return NaN: a score that is undefined because the
predictions or labels are constant (or there are fewer than two items) is reported as ``0.0``
- e.g. a model that predicts one class everywhere gets ``mcc == 0.0``, and a regressor that
outputs a constant gets ``pearson == spearman == 0.0``. ``f1``/``macro_f1`` use
``zero_division=0``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from lmdistill.errors import DataError

__all__ = ["METRICS", "CLASSIFICATION_METRICS", "REGRESSION_METRICS", "GROUP_METRICS",
           "compute", "group_accuracy"]

CLASSIFICATION_METRICS = ("accuracy", "f1", "macro_f1", "mcc", "group_accuracy")
REGRESSION_METRICS = ("pearson", "spearman")
#: metrics over groups of rows (e.g. the candidate senses of one WSD instance): they need the
#: rows' ``groups`` and ``scores``
GROUP_METRICS = ("group_accuracy",)
METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS


#: metrics where lower is better (model selection, early stopping, diagnosis)
LOWER_IS_BETTER = ("loss", "mse", "mae", "mlm_loss")


def metric_mode(metric: str) -> str:
    """"min" for a loss-like metric, else "max"."""
    return "min" if metric in LOWER_IS_BETTER else "max"


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _class_ids(preds: np.ndarray) -> np.ndarray:
    if preds.ndim == 2:
        preds = preds.ravel() if preds.shape[1] == 1 else preds.argmax(axis=1)
    if preds.ndim != 1:
        raise ValueError(f"predictions must be 1-D class ids or 2-D scores, got shape {preds.shape}")
    if preds.dtype.kind == "f":
        if not np.all(np.isfinite(preds)) or np.any(preds != np.round(preds)):
            raise ValueError("classification metrics need integer class ids, got non-integer floats")
    return preds.astype(np.int64)


def _floats(x: np.ndarray) -> np.ndarray:
    if x.ndim == 2 and x.shape[1] == 1:
        x = x.ravel()
    if x.ndim != 1:
        raise ValueError(f"regression metrics need a 1-D array, got shape {x.shape}")
    return x.astype(np.float64)


def _finite_or_zero(v: float) -> float:
    v = float(v)
    return v if math.isfinite(v) else 0.0


def _correlation(kind: str, p: np.ndarray, y: np.ndarray) -> float:
    from scipy import stats

    # Constant input (or < 2 points) makes the correlation undefined: report 0.0, not NaN.
    if len(p) < 2 or np.ptp(p) == 0 or np.ptp(y) == 0:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn = stats.pearsonr if kind == "pearson" else stats.spearmanr
        return _finite_or_zero(fn(p, y)[0])


def group_accuracy(scores: Any, labels: Any, groups: Any) -> float:
    """Accuracy over groups of candidate rows: in each group the row with the highest score is
    the prediction, correct when that row is labelled 1. A group may have several rows
    labelled 1 (several gold keys: any of them counts); a group with none counts as wrong.
    Ties go to the first row of the group. E.g. word-sense disambiguation by gloss
    classification: one group per target word, one row per candidate sense."""
    s, y, g = (np.asarray(x).reshape(-1) for x in (scores, labels, groups))
    if not len(s) == len(y) == len(g):
        raise ValueError(f"{len(s)} scores, {len(y)} labels, {len(g)} group ids")
    if len(s) == 0:
        raise ValueError("cannot compute metrics on zero examples")
    best: dict = {}
    for i, gid in enumerate(g.tolist()):
        if gid not in best or s[i] > s[best[gid]]:
            best[gid] = i
    return float(np.mean([y[i] == 1 for i in best.values()]))


def compute(metric_names: list[str], preds: Any, labels: Any, groups: Any = None,
            scores: Any = None) -> dict[str, float]:
    """Compute ``metric_names`` (in order) for ``preds`` against ``labels``; group metrics
    (:data:`GROUP_METRICS`) also need each row's ``groups`` id and ``scores``.

    Unknown metric names raise DataError listing the known ones; length mismatches and empty
    inputs raise ValueError (a programming error, not a data problem).
    """
    unknown = [m for m in metric_names if m not in METRICS]
    if unknown:
        raise DataError(f"unknown metric '{unknown[0]}'; known: {', '.join(METRICS)}")
    p_raw, y_raw = _to_numpy(preds), _to_numpy(labels)
    if len(p_raw) != len(y_raw):
        raise ValueError(f"{len(p_raw)} predictions but {len(y_raw)} labels")
    if len(y_raw) == 0:
        raise ValueError("cannot compute metrics on zero examples")

    from sklearn import metrics as skm

    out: dict[str, float] = {}
    if any(m in CLASSIFICATION_METRICS for m in metric_names):
        p, y = _class_ids(p_raw), _class_ids(y_raw)
    for name in metric_names:
        if name in GROUP_METRICS:
            if groups is None or scores is None:
                raise DataError(f"metric '{name}' needs a 'group' id per row (an extra of the "
                                "examples) and the rows' scores")
            out[name] = group_accuracy(scores, y_raw, groups)
        elif name == "accuracy":
            out[name] = float(np.mean(p == y))
        elif name == "f1":
            extra = sorted(set(np.unique(np.concatenate([p, y])).tolist()) - {0, 1})
            if extra:
                raise DataError(
                    f"metric 'f1' is binary (positive class 1) but got classes {extra}; use macro_f1"
                )
            out[name] = float(skm.f1_score(y, p, pos_label=1, average="binary", zero_division=0))
        elif name == "macro_f1":
            out[name] = float(skm.f1_score(y, p, average="macro", zero_division=0))
        elif name == "mcc":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[name] = _finite_or_zero(skm.matthews_corrcoef(y, p))
        else:  # pearson / spearman
            out[name] = _correlation(name, _floats(p_raw), _floats(y_raw))
    return out
