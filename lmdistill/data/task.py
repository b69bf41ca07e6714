"""The task model: :class:`Example`, :class:`Task` (label set, metrics, splits), label
parsing and the row loaders shared by the built-in datasets and local files."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from lmdistill.data import metrics as _metrics
from lmdistill.data.readers import Table, read_csv_quoted, read_json, read_jsonl, read_tsv
from lmdistill.errors import DataError

from .tasks_common import SPLIT_SEED, _Row


# --------------------------------------------------------------------------------------------
# Example / Task
# --------------------------------------------------------------------------------------------


@dataclass
class Example:
    """One row of a split.

    ``idx`` is the row's position within the *full* split (0..n-1), stable across runs and
    unchanged when :meth:`Task.load` returns a ``limit``-ed subset.
    """

    text_a: str
    text_b: str | None
    label: int | float | None
    idx: int
    #: per-example extras beyond text and label (numbers): e.g. ``domain`` id, instance
    #: ``weight``, prototype score, candidate ``group`` id. They flow through ``encode`` and
    #: ``collate`` into every batch as tensors of the same name.
    meta: dict[str, float | int] | None = field(default=None, compare=False)


@dataclass
class Task:
    """A dataset with its label set, metrics and split loaders.

    ``label_names is None`` means regression (one float output). ``metrics[0]`` is the primary
    metric (used for model selection). Splits are read lazily on first :meth:`load` and cached.
    """

    name: str
    label_names: list[str] | None
    metrics: list[str]
    is_pair: bool
    splits: list[str]
    description: str = ""
    _loaders: dict[str, Callable[[], list[_Row]]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _cache: dict[str, list[_Row]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.label_names is not None:
            if len(self.label_names) < 2:
                raise DataError(f"task '{self.name}' needs at least 2 labels, got {self.label_names}")
            if len(set(self.label_names)) != len(self.label_names):
                raise DataError(f"task '{self.name}' has duplicate label names: {self.label_names}")
        _check_metrics(self.name, self.metrics, regression=self.label_names is None)

    # -- label set ------------------------------------------------------------------------
    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        """Number of model outputs: the number of classes, or 1 for regression."""
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    # -- data -----------------------------------------------------------------------------
    def load(self, split: str, limit: int | None = None, seed: int = 0) -> list[Example]:
        """Examples of ``split``, in file (or fixed-split) order.

        ``limit``: keep a seeded random subset of ``limit`` rows (``random.Random(seed)``),
        still in the original order; ``Example.idx`` is always the position in the full split.
        ``limit=None`` or ``limit >= len(split)`` returns everything.
        """
        if split not in self.splits:
            raise DataError(
                f"task '{self.name}' has no split '{split}'; available: {', '.join(self.splits)}"
            )
        rows = self._rows(split)
        n = len(rows)
        if limit is None or limit >= n:
            chosen: Sequence[int] = range(n)
        else:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise DataError(f"limit must be a positive whole number of examples, got {limit!r}")
            chosen = sorted(random.Random(seed).sample(range(n), limit))
        # a row may carry a 4th item: its meta (e.g. the candidate group of a WSD pair)
        return [Example(rows[i][0], rows[i][1], rows[i][2], i,
                        dict(rows[i][3]) if len(rows[i]) > 3 and rows[i][3] else None)
                for i in chosen]

    def compute_metrics(self, preds: Any, labels: Any, groups: Any = None,
                        scores: Any = None) -> dict[str, float]:
        """``metrics.compute(self.metrics, ...)``: ``{metric: float}``, primary first; group
        metrics use each row's ``groups`` id and ``scores`` (the positive-class logit)."""
        return _metrics.compute(self.metrics, preds, labels, groups, scores)

    def _rows(self, split: str) -> list[_Row]:
        if split not in self._cache:
            loader = self._loaders.get(split)
            if loader is None:
                raise DataError(f"task '{self.name}' has no reader for split '{split}'")
            rows = loader()
            if not rows:
                raise DataError(f"no examples in split '{split}' of task '{self.name}'")
            self._cache[split] = rows
        return self._cache[split]

    @classmethod
    def from_examples(
        cls,
        name: str,
        splits: dict[str, Sequence[Example | tuple]],
        label_names: list[str] | None,
        metrics: list[str] | None = None,
    ) -> "Task":
        """An in-memory task (tests, synthetic data): ``splits`` maps split -> examples or
        ``(text_a, text_b, label)`` tuples. Labels are used as given (class ids / floats)."""
        loaders: dict[str, Callable[[], list[_Row]]] = {}
        is_pair = False
        for split, items in splits.items():
            rows = [(e.text_a, e.text_b, e.label, e.meta) if isinstance(e, Example) else tuple(e)
                    for e in items]
            is_pair = is_pair or any(r[1] is not None for r in rows)
            loaders[split] = partial(list, rows)
        if metrics is None:
            metrics = ["pearson", "spearman"] if label_names is None else ["accuracy"]
        return cls(name, label_names, list(metrics), is_pair, list(splits), _loaders=loaders)


def _check_metrics(task: str, names: list[str], regression: bool) -> None:
    if not names:
        raise DataError(f"task '{task}' needs at least one metric; known: {', '.join(_metrics.METRICS)}")
    for m in names:
        if m not in _metrics.METRICS:
            known = ", ".join(_metrics.METRICS)
            raise DataError(f"unknown metric '{m}' for task '{task}'; known: {known}")
        if regression and m in _metrics.CLASSIFICATION_METRICS:
            raise DataError(
                f"metric '{m}' needs class labels but task '{task}' is regression; "
                f"use {', '.join(_metrics.REGRESSION_METRICS)}"
            )


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Labels:
    """Maps raw label cells to class ids (or floats for regression)."""

    names: tuple[str, ...] | None  # None => regression
    mapping: tuple[tuple[str, int], ...] = ()
    shown: str = ""  # how the accepted values are listed in error messages

    def encode(self, raw: Any, where: str) -> int | float:
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            raise DataError(f"missing label in {where}")
        if self.names is None:
            return _parse_float(raw, where)
        key = _label_str(raw)
        for k, v in self.mapping:
            if k == key:
                return v
        raise DataError(f"label '{key}' in {where} is not in the label set [{self.shown}]")


def _by_index(names: Sequence[str]) -> _Labels:
    """The file stores class ids 0..K-1 (GLUE style)."""
    return _Labels(
        tuple(names),
        tuple((str(i), i) for i in range(len(names))),
        ", ".join(f"{i}={n}" for i, n in enumerate(names)),
    )


def _by_name(names: Sequence[str]) -> _Labels:
    """The file stores the label names themselves."""
    return _Labels(tuple(names), tuple((n, i) for i, n in enumerate(names)), ", ".join(names))


def _by_name_or_index(names: Sequence[str]) -> _Labels:
    """Label names first; a cell that is no name but an integer 0..K-1 is taken as a class id."""
    pairs = [(n, i) for i, n in enumerate(names)]
    pairs += [(str(i), i) for i in range(len(names)) if str(i) not in names]
    return _Labels(tuple(names), tuple(pairs), ", ".join(names))


_REGRESSION = _Labels(None)


def _label_str(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return raw if isinstance(raw, str) else str(raw)


def _parse_float(raw: Any, where: str) -> float:
    try:
        if isinstance(raw, bool):
            raise ValueError
        v = float(raw)
    except (TypeError, ValueError):
        raise DataError(f"label '{raw}' in {where} is not a number (regression task)") from None
    if not math.isfinite(v):
        raise DataError(f"label '{raw}' in {where} is not a finite number")
    return v


# --------------------------------------------------------------------------------------------
# Generic loaders (module-level functions + functools.partial so tasks stay picklable)
# --------------------------------------------------------------------------------------------

Col = str | int  # a header name, or a 0-based position for header-less files


def _column(table: Table, col: Col | None) -> int | None:
    if col is None or isinstance(col, int):
        return col
    return table.column_index(col)


def _rows_from_table(
    table: Table, text_a: Col, text_b: Col | None, label: Col | None, labels: _Labels
) -> list[_Row]:
    if not table.rows:
        raise DataError(f"no examples in {table.path}")
    ia, ib, il = _column(table, text_a), _column(table, text_b), _column(table, label)
    out: list[_Row] = []
    for i in range(len(table.rows)):
        a = table.cell(i, ia, str(text_a))
        b = None if ib is None else table.cell(i, ib, str(text_b))
        y = None
        if il is not None:
            y = labels.encode(table.cell(i, il, str(label)), f"{table.path} line {table.lines[i]}")
        out.append((a, b, y))
    return out


def _load_tsv(
    path: Path, header: bool, text_a: Col, text_b: Col | None, label: Col | None, labels: _Labels
) -> list[_Row]:
    return _rows_from_table(read_tsv(path, header=header), text_a, text_b, label, labels)


def _load_quoted(
    path: Path, delimiter: str, text_a: Col, text_b: Col | None, label: Col | None, labels: _Labels
) -> list[_Row]:
    return _rows_from_table(read_csv_quoted(path, delimiter=delimiter), text_a, text_b, label, labels)


def _records(path: Path, fmt: str) -> list[tuple[str, Any]]:
    """(location, record) pairs of a JSONL file or a JSON list of objects."""
    if fmt == "jsonl":
        recs = [(f"{path} line {n}", r) for n, r in read_jsonl(path)]
    else:
        data = read_json(path)
        if not isinstance(data, list):
            raise DataError(f"{path} must hold a JSON list of objects, found a {type(data).__name__}")
        recs = [(f"{path} item {i}", r) for i, r in enumerate(data)]
    if not recs:
        raise DataError(f"no examples in {path}")
    for where, r in recs:
        if not isinstance(r, dict):
            kind = type(r).__name__
            raise DataError(f"{where} is a JSON {kind}, expected an object with named fields")
    return recs


def _field(rec: dict, key: str, where: str) -> Any:
    if key not in rec:
        raise DataError(f"column '{key}' not in {where} (columns: {', '.join(map(str, rec))})")
    return rec[key]


def _text(v: Any, key: str, where: str) -> str:
    if v is None:
        raise DataError(f"column '{key}' is null in {where}")
    return v if isinstance(v, str) else str(v)


def _load_records(
    path: Path, fmt: str, text_a: str, text_b: str | None, label: str | None, labels: _Labels
) -> list[_Row]:
    out: list[_Row] = []
    for where, r in _records(path, fmt):
        a = _text(_field(r, text_a, where), text_a, where)
        b = None if text_b is None else _text(_field(r, text_b, where), text_b, where)
        y = None if label is None else labels.encode(_field(r, label, where), where)
        out.append((a, b, y))
    return out


def _load_by_fixed_split(
    load_all: Callable[[], list[_Row]], split: str, seed: int = SPLIT_SEED
) -> list[_Row]:
    rows = load_all()
    return [rows[i] for i in _fixed_split(len(rows), seed)[split]]


def _fixed_split(n: int, seed: int = SPLIT_SEED) -> dict[str, list[int]]:
    """Row positions of a fixed 80/10/10 split: shuffle ``range(n)`` with
    ``random.Random(seed)``, then train = first ``int(0.8 n)``, dev = next ``int(0.1 n)``,
    test = the rest. Rows keep the shuffled order inside each split."""
    perm = list(range(n))
    random.Random(seed).shuffle(perm)
    n_train, n_dev = int(0.8 * n), int(0.1 * n)
    return {
        "train": perm[:n_train],
        "dev": perm[n_train : n_train + n_dev],
        "test": perm[n_train + n_dev :],
    }
