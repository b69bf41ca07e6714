"""Task registry: named, reproducible text classification / regression datasets.

A :class:`Task` knows its label set, metrics (primary first), whether inputs are sentence pairs,
its split names, and how to read each split from the data directory into :class:`Example` rows.

Data directory
    All registered tasks read files in place below one directory (the repository's ``data``
    folder layout, e.g. ``/work/shared/data``), chosen by :func:`data_dir`: an explicit
    argument (the CLI's ``--data-dir``), else the ``LMDISTILL_DATA`` environment variable.
    Nothing is downloaded.

Registered tasks (see each builder's docstring, also available as ``Task.description``)
    ``sst2 cola mrpc rte stsb qnli rt amazon-{books,dvd,electronics,kitchen,airline} cikm
    clinc150 clinc150-oos``. Tasks without an official split (``rt``, ``cikm``) use a fixed,
    seeded 80/10/10 shuffle so every run and every machine sees the same split.

Local files
    ``get_task("file:/path/x.csv", text_a="sentence")`` (or any name that looks like a path)
    builds a task from a local TSV/CSV/JSONL/JSON file via :func:`generic_task`.

Labels
    ``Example.label`` is the class id (index into ``Task.label_names``) for classification, a
    float for regression (``label_names is None``), ``None`` for unlabelled data. A label not in
    the label set raises :class:`~lmdistill.errors.DataError` naming file and line.
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from lmdistill.data import metrics as _metrics
from lmdistill.data.readers import Table, read_csv_quoted, read_json, read_jsonl, read_lines, read_tsv
from lmdistill.errors import DataError

__all__ = [
    "AMAZON_DOMAINS",
    "ENV_VAR",
    "Example",
    "Task",
    "data_dir",
    "generic_task",
    "get_task",
    "list_tasks",
]

ENV_VAR = "LMDISTILL_DATA"
AMAZON_DOMAINS = ["books", "dvd", "electronics", "kitchen", "airline"]
SPLIT_SEED = 13  # seed of the fixed 80/10/10 splits of rt and cikm (do not change: it defines them)

Label = int | float | None
_Row = tuple[str, "str | None", Label]  # (text_a, text_b, label) of one example


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
        return [Example(rows[i][0], rows[i][1], rows[i][2], i) for i in chosen]

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
            rows = [(e.text_a, e.text_b, e.label) if isinstance(e, Example) else tuple(e) for e in items]
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


# --------------------------------------------------------------------------------------------
# Registered tasks
# --------------------------------------------------------------------------------------------

_SENTIMENT = ["negative", "positive"]
_NLI2 = ["entailment", "not_entailment"]


def _sst2(root: Path) -> Task:
    """GLUE SST-2 binary sentiment (Socher et al. 2013; GLUE v1 split).

    Source: ``glue/SST-2/{train,dev,test-labeled}.tsv``, header ``sentence<TAB>label``,
    label 0=negative 1=positive. Splits: train 67,349 (37,569 positive), dev 872 (444 pos),
    test 1,821 = ``test-labeled.tsv`` (CRLF line ends; labels derived from SST by the
    Reproducing-AutoPrompt authors, NOT official GLUE test labels - say so when reporting).
    Metric: accuracy.
    """
    d = root / "glue" / "SST-2"
    lab = _by_index(_SENTIMENT)
    files = {"train": "train.tsv", "dev": "dev.tsv", "test": "test-labeled.tsv"}
    return _table_task(
        _sst2, _SENTIMENT, ["accuracy"], d, files,
        text_a="sentence", text_b=None, label="label", labels=lab,
    )


def _cola(root: Path) -> Task:
    """CoLA linguistic acceptability (GLUE construction).

    Source: ``glue/CoLA/{train,dev}.tsv``, no header, columns source, label, original label,
    sentence; label 0=unacceptable 1=acceptable. Splits: train 8,551, dev 1,043 (in-domain 527
    + out-of-domain 516; the file lacks a final newline, so ``wc -l`` says 1,042).
    The GLUE test set is unlabelled and not exposed. Metrics: mcc (primary), accuracy.
    """
    d = root / "glue" / "CoLA"
    names = ["unacceptable", "acceptable"]
    files = {"train": "train.tsv", "dev": "dev.tsv"}
    return _table_task(
        _cola, names, ["mcc", "accuracy"], d, files,
        text_a=3, text_b=None, label=1, labels=_by_index(names), header=False,
    )


def _mrpc(root: Path) -> Task:
    """MRPC paraphrase detection (sentence pairs; GLUE split).

    Source: ``glue/MRPC/``, header ``Quality #1 ID #2 ID #1 String #2 String`` preceded by a
    UTF-8 BOM (stripped); label = Quality, 0=not_equivalent 1=equivalent. Splits: train 3,668
    (2,474 equivalent), dev 408 (279), test 1,725 = ``msr_paraphrase_test.txt`` (the labelled
    original MSR test file; same pairs as the unlabelled GLUE test.tsv, 1,147 equivalent).
    Metrics: f1 (of class equivalent; primary), accuracy.
    """
    d = root / "glue" / "MRPC"
    names = ["not_equivalent", "equivalent"]
    files = {"train": "train.tsv", "dev": "dev.tsv", "test": "msr_paraphrase_test.txt"}
    return _table_task(
        _mrpc, names, ["f1", "accuracy"], d, files,
        text_a="#1 String", text_b="#2 String", label="Quality", labels=_by_index(names),
    )


def _rte(root: Path) -> Task:
    """RTE textual entailment (GLUE/SuperGLUE RTE; sentence pairs).

    Source: ``glue/RTE/{train,dev}.tsv``, header ``index sentence1 sentence2 label``, label
    names in the file; GLUE order entailment=0, not_entailment=1. Splits: train 2,490 (1,249
    entailment), dev 277 (146). Test (3,000) is unlabelled and not exposed. Metric: accuracy.
    """
    d = root / "glue" / "RTE"
    files = {"train": "train.tsv", "dev": "dev.tsv"}
    return _table_task(
        _rte, _NLI2, ["accuracy"], d, files,
        text_a="sentence1", text_b="sentence2", label="label", labels=_by_name(_NLI2),
    )


def _stsb(root: Path) -> Task:
    """STS Benchmark semantic similarity: regression on a 0-5 score (sentence pairs).

    Source: ``glue/STS-B/{train,dev}.tsv``, GLUE header ``index genre filename year
    old_index source1 source2 sentence1 sentence2 score``; columns are looked up by header name.
    Splits: train 5,749, dev 1,500. Test (1,379) has no scores and is not exposed.
    Metrics: pearson (primary), spearman.
    """
    d = root / "glue" / "STS-B"
    files = {"train": "train.tsv", "dev": "dev.tsv"}
    return _table_task(
        _stsb, None, ["pearson", "spearman"], d, files,
        text_a="sentence1", text_b="sentence2", label="score", labels=_REGRESSION,
    )


def _qnli(root: Path) -> Task:
    """QNLI question-answering NLI (GLUE v2; pairs question / sentence).

    Source: ``glue/QNLI/dev.tsv``, header ``index question sentence label``; entailment=0,
    not_entailment=1. Only the dev split exists locally (5,463 rows, 2,702 entailment): the
    train file is not shipped. Metric: accuracy.
    """
    d = root / "glue" / "QNLI"
    return _table_task(
        _qnli, _NLI2, ["accuracy"], d, {"dev": "dev.tsv"},
        text_a="question", text_b="sentence", label="label", labels=_by_name(_NLI2),
    )


def _load_rt(d: Path) -> list[_Row]:
    rows: list[_Row] = []
    for label, fname in enumerate(["rt-polarity.neg", "rt-polarity.pos"]):
        lines = read_lines(d / fname, errors="replace")
        if not lines:
            raise DataError(f"no examples in {d / fname}")
        rows += [(text, None, label) for _, text in lines]
    return rows


def _rt(root: Path) -> Task:
    """RT / MR movie-review sentence polarity (Pang & Lee 2005), SST-2's out-of-domain twin.

    Source: ``rt-polarity/rt-polarity.{neg,pos}``, one sentence per line (UTF-8, invalid bytes
    replaced), 5,331 + 5,331; label 0=negative 1=positive. There is no official split: the
    10,662 rows (all .neg lines then all .pos lines, file order) are shuffled with
    ``random.Random(13)`` and cut 80/10/10 -> train 8,529 (4,250 positive), dev 1,066 (552),
    test 1,067 (529); rows stay in shuffled order. Metric: accuracy.
    """
    d = root / "rt-polarity"
    load_all = partial(_load_rt, d)
    loaders = {s: partial(_load_by_fixed_split, load_all, s) for s in ("train", "dev", "test")}
    return Task("rt", _SENTIMENT, ["accuracy"], False, list(loaders), _doc(_rt), loaders)


def _amazon(domain: str, root: Path) -> Task:
    """Amazon multi-domain sentiment (Blitzer et al. 2007; + airline reviews), one domain.

    Source: ``amazon-multidomain/<domain>/{train,dev,test-labeled}.tsv``, header
    ``sentence<TAB>label``, CSV-quoted fields (review = ``title\\n\\tbody`` with embedded
    newlines and tabs; parsed with the csv module), label 0=negative 1=positive.
    Splits: train 1,700 (850/850), dev 300 (150/150), all 2,000 = ``test-labeled.tsv`` =
    train + dev, for cross-domain evaluation (train on domain A, evaluate on B's "all").
    Upstream quirk: a few reviews occur twice, some in both train and dev. Metric: accuracy.
    """
    d = root / "amazon-multidomain" / domain
    files = {"train": "train.tsv", "dev": "dev.tsv", "all": "test-labeled.tsv"}
    lab = _by_index(_SENTIMENT)
    loaders = {
        s: partial(_load_quoted, d / f, "\t", "sentence", None, "label", lab) for s, f in files.items()
    }
    return Task(f"amazon-{domain}", _SENTIMENT, ["accuracy"], False, list(files), _doc(_amazon), loaders)


def _load_cikm(path: Path) -> list[_Row]:
    table = read_tsv(path, header=False)
    return _rows_from_table(table, 0, 2, 4, _by_index(["not_duplicate", "duplicate"]))


def _cikm(root: Path) -> Task:
    """CIKM AnalytiCup 2018 question matching, English part (MRPC's out-of-domain twin).

    Source: ``cikm2018/cikm_english_train_20180516.txt``, no header, columns en1, es1, en2,
    es2, label; the task uses the pair (en1, en2); label 0=not_duplicate 1=duplicate
    (20,000 rows, 5,094 duplicates). No official split: rows are shuffled with
    ``random.Random(13)`` and cut 80/10/10 -> train 16,000 (4,075 duplicates), dev 2,000 (511),
    test 2,000 (508); rows stay in shuffled order. Metrics: accuracy (primary), f1 (duplicate).
    """
    path = root / "cikm2018" / "cikm_english_train_20180516.txt"
    load_all = partial(_load_cikm, path)
    loaders = {s: partial(_load_by_fixed_split, load_all, s) for s in ("train", "dev", "test")}
    names = ["not_duplicate", "duplicate"]
    return Task("cikm", names, ["accuracy", "f1"], True, list(loaders), _doc(_cikm), loaders)


_CLINC_SPLITS = {"train": "train", "dev": "val", "test": "test"}


def _clinc_json(path: Path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path} must be a JSON object of splits (train, val, test, oos_*)")
    return data


def _clinc_items(data: dict, path: Path, key: str) -> list[tuple[str, str, str]]:
    items = data.get(key)
    if not isinstance(items, list):
        raise DataError(f"split '{key}' missing from {path} (has: {', '.join(map(str, data))})")
    out = []
    for i, it in enumerate(items):
        if not (isinstance(it, list) and len(it) == 2 and all(isinstance(x, str) for x in it)):
            raise DataError(f"{path} {key}[{i}] is not a [text, intent] pair")
        out.append((it[0], it[1], f"{path} {key}[{i}]"))
    return out


def _load_clinc(path: Path, keys: tuple[str, ...], names: tuple[str, ...]) -> list[_Row]:
    data = _clinc_json(path)
    lab = _by_name(names)
    return [
        (text, None, lab.encode(intent, where))
        for k in keys
        for text, intent, where in _clinc_items(data, path, k)
    ]


def _clinc(root: Path, oos: bool = False) -> Task:
    """CLINC150 intent classification (Larson et al. 2019), "full" version.

    Source: ``clinc150/data/data_full.json``: {split: [[text, intent], ...]}. Labels: the 150
    in-scope intents, sorted (= ``clinc150/intents.txt``). Splits: train 15,000, dev 3,000
    (the file's ``val``), test 4,500 (100/20/30 per intent); out-of-scope queries excluded.
    Metric: accuracy.
    """
    path = root / "clinc150" / "data" / "data_full.json"
    intents = sorted({intent for _, intent, _ in _clinc_items(_clinc_json(path), path, "train")})
    names = tuple(intents + ["oos"]) if oos else tuple(intents)
    loaders = {
        s: partial(_load_clinc, path, (k, f"oos_{k}") if oos else (k,), names)
        for s, k in _CLINC_SPLITS.items()
    }
    name = "clinc150-oos" if oos else "clinc150"
    doc = _doc(_clinc_oos if oos else _clinc)
    return Task(name, list(names), ["accuracy"], False, list(loaders), doc, loaders)


def _clinc_oos(root: Path) -> Task:
    """CLINC150 with out-of-scope queries as a 151st class ``oos`` (id 150).

    Source: ``clinc150/data/data_full.json``. Splits = in-scope rows followed by the
    out-of-scope rows: train 15,000 + 100 = 15,100, dev (val) 3,000 + 100 = 3,100,
    test 4,500 + 1,000 = 5,500. Metric: accuracy (over all 151 classes).
    """
    return _clinc(root, oos=True)


def _table_task(
    builder: Callable,
    label_names: list[str] | None,
    metric_names: list[str],
    folder: Path,
    files: dict[str, str],
    *,
    text_a: Col,
    text_b: Col | None,
    label: Col,
    labels: _Labels,
    header: bool = True,
) -> Task:
    """A task whose splits are GLUE-style TSV files in ``folder``; named after ``builder``."""
    loaders = {
        s: partial(_load_tsv, folder / f, header, text_a, text_b, label, labels)
        for s, f in files.items()
    }
    name = builder.__name__.lstrip("_")
    return Task(name, label_names, metric_names, text_b is not None, list(files), _doc(builder), loaders)


def _doc(fn: Callable) -> str:
    return inspect.cleandoc(fn.__doc__ or "")


_REGISTRY: dict[str, Callable[[Path], Task]] = {
    "sst2": _sst2,
    "cola": _cola,
    "mrpc": _mrpc,
    "rte": _rte,
    "stsb": _stsb,
    "qnli": _qnli,
    "rt": _rt,
    **{f"amazon-{d}": partial(_amazon, d) for d in AMAZON_DOMAINS},
    "cikm": _cikm,
    "clinc150": _clinc,
    "clinc150-oos": _clinc_oos,
}

_ALIASES = {
    "sst-2": "sst2",
    "sts-b": "stsb",
    "rt-polarity": "rt",
    "mr": "rt",
    "cikm2018": "cikm",
    "clinc": "clinc150",
    "clinc-oos": "clinc150-oos",
}

# GLUE / related tasks whose data is not in the local data directory.
_NOT_LOCAL = {"mnli", "mnli-mm", "qqp", "wnli", "ax", "scitail", "snli"}


def register_task(name: str, factory: "Callable[[Path], Task] | Task",
                  aliases: Sequence[str] = (), replace: bool = False) -> None:
    """Add a task to the registry, so ``get_task(name)`` (and ``--task name`` on the command
    line) finds it. ``factory(data_dir) -> Task`` builds it from the data directory (or pass a
    ready :class:`Task`, e.g. ``Task.from_examples(...)``, which needs no data directory).
    Names are case-insensitive; a taken name needs ``replace=True``."""
    key = name.strip().lower().replace("_", "-")
    if not key:
        raise DataError("a task needs a name")
    if not replace and (key in _REGISTRY or key in _ALIASES):
        raise DataError(f"task '{key}' is already registered; pass replace=True to replace it")
    if isinstance(factory, Task):
        task = factory
        _REGISTRY[key] = lambda _dir: task
        _NO_DATA_DIR.add(key)
    elif callable(factory):
        _REGISTRY[key] = factory
        _NO_DATA_DIR.discard(key)
    else:
        raise DataError(f"register_task('{key}'): give a Task or a function data_dir -> Task")
    for a in aliases:
        _ALIASES[a.strip().lower().replace("_", "-")] = key


def unregister_task(name: str) -> None:
    key = name.strip().lower().replace("_", "-")
    _REGISTRY.pop(key, None)
    _NO_DATA_DIR.discard(key)
    for a in [a for a, k in _ALIASES.items() if k == key]:
        del _ALIASES[a]


#: registered tasks that are ready Task objects (no data directory needed)
_NO_DATA_DIR: set[str] = set()


def list_tasks() -> list[str]:
    """Names of the registered tasks (in registry order)."""
    return list(_REGISTRY)


# --------------------------------------------------------------------------------------------
# Data directory and lookup
# --------------------------------------------------------------------------------------------


def _resolve_data_dir(explicit: str | os.PathLike | None) -> Path:
    if explicit is not None and str(explicit) != "":
        raw, origin = str(explicit), ""
    elif os.environ.get(ENV_VAR):
        raw, origin = os.environ[ENV_VAR], f" (from {ENV_VAR})"
    else:
        raise DataError(f"no data directory given; set --data-dir or {ENV_VAR}")
    p = Path(raw).expanduser().resolve()
    if not p.exists():
        raise DataError(f"data directory {p}{origin} does not exist; set --data-dir or {ENV_VAR}")
    if not p.is_dir():
        raise DataError(f"data directory {p}{origin} is not a directory; set --data-dir or {ENV_VAR}")
    return p


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data directory: ``explicit`` if given, else ``$LMDISTILL_DATA``; it must exist.

    Raises DataError explaining how to set it when neither is given or the directory is missing.
    """
    return _resolve_data_dir(explicit)


_EXT_FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}
_FORMATS = ("tsv", "tsv-quoted", "csv", "jsonl", "json")


def _looks_like_path(name: str) -> bool:
    return (
        "/" in name
        or "\\" in name
        or name.startswith(("~", "."))
        or Path(name).suffix.lower() in _EXT_FORMATS
    )


def get_task(name: str, data_dir: str | Path | None = None, **generic: Any) -> Task:
    """Look up a registered task (case-insensitive; ``sst-2``/``sts-b``-style aliases work) or,
    for ``file:<path>`` or a path-like name, build :func:`generic_task` from ``generic``
    (``text_a=`` is required then; the task is named after the file stem - call
    :func:`generic_task` directly to choose ``name``). ``data_dir`` is only used by registered
    tasks."""
    if name.startswith("file:"):
        return _generic_from_lookup(name[len("file:"):].removeprefix("//"), generic)
    if _looks_like_path(name):
        return _generic_from_lookup(name, generic)
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        known = ", ".join(_REGISTRY)
        if key in _NOT_LOCAL:
            raise DataError(
                f"task '{name}' is not available: its data is not in the local data directory "
                f"(and downloading is not supported); known: {known}"
            )
        close = difflib.get_close_matches(key, list(_REGISTRY) + list(_ALIASES), n=1)
        hint = f" (did you mean '{_ALIASES.get(close[0], close[0])}'?)" if close else ""
        raise DataError(
            f"unknown task '{name}'{hint}; known: {known}, or a .tsv/.csv/.jsonl/.json file path"
        )
    if generic:
        raise DataError(
            f"options {', '.join(sorted(generic))} only apply to file tasks, "
            f"not to registered task '{key}'"
        )
    if key in _NO_DATA_DIR:
        return _REGISTRY[key](None)
    return _REGISTRY[key](_resolve_data_dir(data_dir))


def _generic_from_lookup(path: str, options: dict[str, Any]) -> Task:
    unknown = sorted(set(options) - _GENERIC_OPTIONS)
    if unknown:
        allowed = ", ".join(sorted(_GENERIC_OPTIONS))
        raise DataError(
            f"unknown option(s) {', '.join(unknown)} for file task {path}; allowed: {allowed}"
        )
    if not options.get("text_a"):
        raise DataError(f"file task {path} needs text_a=<column holding the text>")
    return generic_task(path, **options)


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
