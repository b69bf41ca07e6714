"""Tasks from local TSV/CSV/JSONL/JSON files: :func:`generic_task`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from lmdistill.data import metrics as _metrics
from lmdistill.data.readers import read_csv_quoted, read_tsv
from lmdistill.errors import DataError

from .tasks_common import _Row
from .task import (_REGRESSION, Task, _by_name_or_index, _field, _label_str, _Labels,
                   _load_quoted, _load_records, _load_tsv, _records)

_EXT_FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}
_FORMATS = ("tsv", "tsv-quoted", "csv", "jsonl", "json")


# --------------------------------------------------------------------------------------------
# Local files
# --------------------------------------------------------------------------------------------


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in _FORMATS:
            raise DataError(f"unknown file format '{fmt}'; known: {', '.join(_FORMATS)}")
        return fmt
    f = _EXT_FORMATS.get(path.suffix.lower())
    if f is None:
        known = ", ".join(_FORMATS)
        raise DataError(f"cannot tell the format of {path} from its extension; pass fmt= ({known})")
    return f


def _file_loader(
    path: Path, fmt: str, text_a: str, text_b: str | None, label: str | None, labels: _Labels
) -> Callable[[], list[_Row]]:
    if fmt == "tsv":
        return partial(_load_tsv, path, True, text_a, text_b, label, labels)
    if fmt in ("csv", "tsv-quoted"):
        return partial(_load_quoted, path, "," if fmt == "csv" else "\t", text_a, text_b, label, labels)
    return partial(_load_records, path, fmt, text_a, text_b, label, labels)


def _raw_labels(path: Path, fmt: str, label: str) -> list[tuple[Any, str]]:
    """(raw label, location) of every row of a file, for label-set inference."""
    if fmt in ("tsv", "csv", "tsv-quoted"):
        table = read_tsv(path) if fmt == "tsv" else read_csv_quoted(path, "," if fmt == "csv" else "\t")
        if not table.rows:
            raise DataError(f"no examples in {path}")
        il = table.column_index(label)
        return [
            (table.cell(i, il, label), f"{path} line {table.lines[i]}") for i in range(len(table.rows))
        ]
    return [(_field(r, label, where), where) for where, r in _records(path, fmt)]


def _infer_label_names(path: Path, fmt: str, label: str) -> list[str]:
    values: set[str] = set()
    for raw, where in _raw_labels(path, fmt, label):
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise DataError(f"missing label in {where}")
        values.add(_label_str(raw))
    if len(values) < 2:
        raise DataError(
            f"only one label value ({', '.join(sorted(values))}) in {path}; a classifier needs at "
            f"least two (pass label_names=... or regression=True)"
        )
    if all(v.lstrip("-").isdigit() for v in values):
        return sorted(values, key=int)  # "2" < "10", so integer labels keep their own ids
    return sorted(values)


def generic_task(
    path: str,
    text_a: str,
    text_b: str | None = None,
    label: str | None = "label",
    label_names: list[str] | None = None,
    regression: bool = False,
    metrics: list[str] | None = None,
    fmt: str | None = None,
    dev_path: str | None = None,
    test_path: str | None = None,
    name: str | None = None,
) -> Task:
    """A task from local files: split "train" = ``path`` (+ "dev" / "test" if given).

    Formats (``fmt``, else from the extension): ``tsv`` (.tsv; header row, no quoting, like
    GLUE), ``tsv-quoted`` (header row, csv quoting with tab delimiter), ``csv`` (.csv; header
    row, csv quoting), ``jsonl`` (.jsonl/.ndjson; one object per line), ``json`` (.json; a list
    of objects). ``text_a`` / ``text_b`` / ``label`` name columns (keys). Cells are never turned
    into missing values ("NA" stays "NA").

    Labels: with ``regression=True`` the label is parsed as a float (metrics default
    pearson, spearman). Otherwise ``label_names`` gives the classes; a cell matches a name, or
    (if it is no name) an integer class id 0..K-1. If ``label_names`` is None it is inferred
    as the sorted unique label strings of the train file (numerically sorted when all are
    integers). Metrics default to ["accuracy"]. ``label=None`` makes the data unlabelled
    (then ``label_names`` is required unless ``regression``).
    """
    train = Path(path).expanduser()
    if not train.exists():
        raise DataError(f"file {train} does not exist")
    formats = {"train": _format_of(train, fmt)}
    paths = {"train": train}
    for split, p in (("dev", dev_path), ("test", test_path)):
        if p is not None:
            paths[split] = Path(p).expanduser()
            formats[split] = _format_of(paths[split], fmt)
    if regression:
        if label_names is not None:
            raise DataError("a regression task has no label_names; drop label_names or regression=True")
        labels, names = _REGRESSION, None
    else:
        if label_names is None:
            if label is None:
                raise DataError(
                    f"unlabelled file task {train} needs label_names=[...] (or regression=True)"
                )
            label_names = _infer_label_names(train, formats["train"], label)
        names = [str(n) for n in label_names]
        labels = _by_name_or_index(names)
    if metrics is None:
        metrics = list(_metrics.REGRESSION_METRICS) if regression else ["accuracy"]
    loaders = {s: _file_loader(paths[s], formats[s], text_a, text_b, label, labels) for s in paths}
    files = ", ".join(f"{s}={p}" for s, p in paths.items())
    desc = f"Local file task: {files} (format {formats['train']})."
    return Task(name or train.stem, names, list(metrics), text_b is not None, list(paths), desc, loaders)


# options get_task forwards to generic_task ("name" is get_task's own first parameter)
_GENERIC_OPTIONS = set(inspect.signature(generic_task).parameters) - {"path", "name"}
