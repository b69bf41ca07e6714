"""The built-in datasets: one builder per task, reading files in place below the data
directory (see :mod:`lmdistill.data.tasks` for the list)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from pathlib import Path

from lmdistill.data.readers import read_json, read_lines, read_tsv
from lmdistill.errors import DataError

from .tasks_common import _Row
from .task import (_REGRESSION, Col, Task, _by_index, _by_name, _Labels, _load_by_fixed_split,
                   _load_quoted, _load_tsv, _rows_from_table)


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


_WIC = ["different", "same"]


def _load_wic(d: Path, split: str) -> list[_Row]:
    data = [line for _, line in read_lines(d / split / f"{split}.data.txt")]
    gold = [line.strip() for _, line in read_lines(d / split / f"{split}.gold.txt")]
    if len(data) != len(gold):
        raise DataError(f"WiC {split}: {len(data)} rows but {len(gold)} gold labels")
    rows: list[_Row] = []
    for n, (line, g) in enumerate(zip(data, gold), 1):
        cols = line.split("\t")
        if len(cols) != 5 or g not in ("T", "F"):
            raise DataError(f"WiC {split}.data.txt line {n}: expected lemma, pos, i-j, "
                            f"sentence 1, sentence 2 and a T/F label")
        idx = [int(x) for x in cols[2].split("-")]
        rows.append((_mark_word(cols[3], idx[0]), _mark_word(cols[4], idx[1]),
                     int(g == "T")))
    return rows


def _mark_word(sentence: str, i: int) -> str:
    """The target word in quotes, as the gloss task marks it (``lmdistill.data.gloss``)."""
    words = sentence.split(" ")
    words[i] = f'" {words[i]} "'
    return " ".join(words)


def _wic(root: Path) -> Task:
    """WiC word-in-context (Pilehvar & Camacho-Collados 2019): does the target word have the
    same sense in both sentences?

    Source: ``wic/{train,dev,test}/<split>.data.txt`` (lemma, POS, word indices ``i-j``,
    sentence 1, sentence 2; tokenized) + ``<split>.gold.txt`` (T/F). The pair is the two
    sentences with the target word in quotes (the same marking as the gloss task), label
    0=different 1=same. Splits: train 5,428, dev 638, test 1,400 (balanced). Metric: accuracy.
    """
    d = root / "wic"
    loaders = {s: partial(_load_wic, d, s) for s in ("train", "dev", "test")}
    return Task("wic", _WIC, ["accuracy"], True, list(loaders), _doc(_wic), loaders)


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
