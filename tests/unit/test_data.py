"""Tests for lmdistill.data.readers / lmdistill.data.tasks on the real data directory.

Expected numbers come from /work/shared/data/README.md and each folder's SOURCE.txt; the fixed
rt / cikm split sizes are defined in the task docstrings. Tasks are cached per module so every
real split (incl. SST-2 train, 67k rows) is parsed at most once.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lmdistill.data import readers
from lmdistill.data.tasks import (
    AMAZON_DOMAINS,
    Example,
    Task,
    _fixed_split,
    data_dir as resolve_data_dir,
    generic_task,
    get_task,
    list_tasks,
)
from lmdistill.errors import DataError

# (task, split) -> rows, from the data README / SOURCE.txt (rt, cikm: fixed 80/10/10 splits)
EXPECTED_ROWS = {
    ("sst2", "train"): 67_349, ("sst2", "dev"): 872, ("sst2", "test"): 1_821,
    ("cola", "train"): 8_551, ("cola", "dev"): 1_043,
    ("mrpc", "train"): 3_668, ("mrpc", "dev"): 408, ("mrpc", "test"): 1_725,
    ("rte", "train"): 2_490, ("rte", "dev"): 277,
    ("stsb", "train"): 5_749, ("stsb", "dev"): 1_500,
    ("qnli", "dev"): 5_463,
    ("rt", "train"): 8_529, ("rt", "dev"): 1_066, ("rt", "test"): 1_067,
    ("cikm", "train"): 16_000, ("cikm", "dev"): 2_000, ("cikm", "test"): 2_000,
    ("clinc150", "train"): 15_000, ("clinc150", "dev"): 3_000, ("clinc150", "test"): 4_500,
    ("clinc150-oos", "train"): 15_100, ("clinc150-oos", "dev"): 3_100, ("clinc150-oos", "test"): 5_500,
    ("wic", "train"): 5_428, ("wic", "dev"): 638, ("wic", "test"): 1_400,
    **{(f"amazon-{d}", s): n for d in AMAZON_DOMAINS for s, n in (("train", 1_700), ("dev", 300), ("all", 2_000))},
}

PAIR_TASKS = {"mrpc", "rte", "stsb", "qnli", "cikm", "wic"}


@pytest.fixture(scope="module")
def tasks(data_dir):
    """name -> Task, built lazily; each Task caches its parsed splits."""
    cache: dict[str, Task] = {}

    def get(name: str) -> Task:
        if name not in cache:
            cache[name] = get_task(name, data_dir=data_dir)
        return cache[name]

    return get


def labels_of(examples):
    return Counter(e.label for e in examples)


# ------------------------------------------------------------------ registry / row counts


def test_registry_covers_every_expected_task():
    # + gloss: WSD gloss classification built from SemCor (tests/e2e/test_wsd_gloss.py)
    assert set(list_tasks()) == {t for t, _ in EXPECTED_ROWS} | {"gloss"}
    assert AMAZON_DOMAINS == ["books", "dvd", "electronics", "kitchen", "airline"]


@pytest.mark.parametrize("name", sorted({t for t, _ in EXPECTED_ROWS}))
def test_splits_and_row_counts(tasks, name):
    task = tasks(name)
    expected = {s: n for (t, s), n in EXPECTED_ROWS.items() if t == name}
    assert task.splits == list(expected)
    for split, n in expected.items():
        examples = task.load(split)
        assert len(examples) == n, (name, split)
        assert [e.idx for e in examples] == list(range(n))
        assert all(isinstance(e.text_a, str) and e.text_a for e in examples)
        if name in PAIR_TASKS:
            assert task.is_pair and all(isinstance(e.text_b, str) for e in examples)
        else:
            assert not task.is_pair and all(e.text_b is None for e in examples)
        if task.is_regression:
            assert all(isinstance(e.label, float) and 0.0 <= e.label <= 5.0 for e in examples)
        else:
            assert all(type(e.label) is int and 0 <= e.label < task.num_labels for e in examples)


def test_task_properties(tasks):
    sst2, cola, mrpc, stsb = tasks("sst2"), tasks("cola"), tasks("mrpc"), tasks("stsb")
    assert sst2.label_names == ["negative", "positive"] and sst2.num_labels == 2
    assert sst2.primary_metric == "accuracy" and not sst2.is_regression
    assert cola.label_names == ["unacceptable", "acceptable"] and cola.metrics == ["mcc", "accuracy"]
    assert mrpc.label_names == ["not_equivalent", "equivalent"] and mrpc.primary_metric == "f1"
    assert tasks("rte").label_names == ["entailment", "not_entailment"]
    assert tasks("qnli").label_names == ["entailment", "not_entailment"]
    assert stsb.is_regression and stsb.label_names is None and stsb.num_labels == 1
    assert stsb.metrics == ["pearson", "spearman"]
    assert tasks("cikm").metrics == ["accuracy", "f1"]
    assert tasks("clinc150").num_labels == 150 and tasks("clinc150-oos").num_labels == 151
    assert "glue/SST-2" in sst2.description  # each task documents its source


def test_aliases_are_accepted(data_dir):
    assert get_task("SST-2", data_dir=data_dir).name == "sst2"
    assert get_task("sts_b", data_dir=data_dir).name == "stsb"


# ------------------------------------------------------------------ label balance & content


def test_sst2_label_balance_and_first_row(tasks):
    train = tasks("sst2").load("train")
    assert labels_of(train) == {1: 37_569, 0: 29_780}
    assert train[0].text_a == "hide new secretions from the parental units " and train[0].label == 0
    assert labels_of(tasks("sst2").load("dev")) == {1: 444, 0: 428}


def test_sst2_test_labeled_crlf_is_stripped(tasks):
    test = tasks("sst2").load("test")  # test-labeled.tsv has CRLF line ends
    assert test[0].text_a == "uneasy mishmash of styles and genres ." and test[0].label == 0
    assert not any("\r" in e.text_a for e in test)


def test_cola_dev_last_row_without_trailing_newline(tasks, data_dir):
    raw = (data_dir / "glue/CoLA/dev.tsv").read_bytes()
    assert raw.count(b"\n") == 1_042 and not raw.endswith(b"\n")  # why `wc -l` says 1,042
    dev = tasks("cola").load("dev")
    assert dev[-1].text_a == "John talked to Bill about himself." and dev[-1].idx == 1_042


def test_mrpc_bom_stripped_and_balance(tasks, data_dir):
    assert (data_dir / "glue/MRPC/train.tsv").read_bytes().startswith(b"\xef\xbb\xbf")
    table = readers.read_tsv(data_dir / "glue/MRPC/train.tsv")
    assert table.columns == ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    mrpc = tasks("mrpc")
    train = mrpc.load("train")
    assert labels_of(train) == {1: 2_474, 0: 1_194}
    assert labels_of(mrpc.load("dev")) == {1: 279, 0: 129}
    assert train[0].text_a.startswith("Amrozi accused his brother, whom he called \"the witness\"")
    assert train[0].text_b.startswith("Referring to him as only \"the witness\"")
    # quoting is off: a field starting with an unbalanced quote is kept verbatim
    assert mrpc.load("dev")[0].text_b.startswith('"The foodservice pie business')


def test_rte_qnli_label_balance(tasks):
    assert labels_of(tasks("rte").load("train")) == {0: 1_249, 1: 1_241}  # entailment = 0
    assert labels_of(tasks("rte").load("dev")) == {0: 146, 1: 131}
    assert labels_of(tasks("qnli").load("dev")) == {0: 2_702, 1: 2_761}


def test_stsb_scores(tasks):
    dev = tasks("stsb").load("dev")
    assert dev[0].text_a == "A man with a hard hat is dancing." and dev[0].label == 5.0
    assert dev[1].label == 4.75


def test_amazon_multiline_quoted_fields(tasks):
    for domain in AMAZON_DOMAINS:
        task = tasks(f"amazon-{domain}")
        for split, half in (("train", 850), ("dev", 150), ("all", 1_000)):
            assert labels_of(task.load(split)) == {0: half, 1: half}
    books = tasks("amazon-books").load("train")
    assert books[0].text_a.startswith("Horrible book, horrible.\n\tTHis book was horrible.")
    multi = [e for e in books if "\n" in e.text_a]
    assert len(multi) == 1_700  # every review is "title\n\tbody"
    assert any("\n\n" in e.text_a for e in multi)
    # csv quoting decoded: the raw field is """Strong-willed Child""?\n\tDobson ... (doubled quotes)
    assert any(e.text_a.startswith('"Strong-willed Child"?\n\tDobson') for e in books)


def test_amazon_all_is_train_plus_dev(tasks):
    task = tasks("amazon-kitchen")
    key = lambda es: sorted((e.text_a, e.label) for e in es)  # noqa: E731
    assert key(task.load("all")) == key(task.load("train") + task.load("dev"))


def test_rt_fixed_split(tasks):
    rt = tasks("rt")
    splits = {s: rt.load(s) for s in ("train", "dev", "test")}
    total = sum((labels_of(v) for v in splits.values()), Counter())
    assert total == {0: 5_331, 1: 5_331}
    assert all(len(labels_of(v)) == 2 for v in splits.values())  # both classes in every split
    assert [labels_of(splits[s])[1] for s in ("train", "dev", "test")] == [4_250, 552, 529]
    texts = [e.text_a for v in splits.values() for e in v]
    assert len(texts) == 10_662
    # the split is fixed: these first rows pin the seed and the shuffle procedure
    assert splits["train"][0].text_a.startswith("it irritates and saddens me that martin lawrence's")
    assert splits["test"][0].text_a.startswith("devolves into the derivative")


def test_cikm_fixed_split(tasks, data_dir):
    cikm = tasks("cikm")
    splits = {s: cikm.load(s) for s in ("train", "dev", "test")}
    assert sum(len(v) for v in splits.values()) == 20_000
    assert sum(labels_of(v)[1] for v in splits.values()) == 5_094
    assert [labels_of(splits[s])[1] for s in ("train", "dev", "test")] == [4_075, 511, 508]
    first = splits["train"][0]
    assert (first.text_a, first.text_b, first.label) == ("I have problem with you guys", "i have a problem with an order", 1)
    # every file row lands in exactly one split (pairs are (en1, en2), Spanish columns unused)
    rows = [line.split("\t") for line in (data_dir / "cikm2018/cikm_english_train_20180516.txt").read_text("utf-8").splitlines()]
    assert Counter((r[0], r[2], int(r[4])) for r in rows) == Counter(
        (e.text_a, e.text_b, e.label) for v in splits.values() for e in v
    )


def test_fixed_split_partitions():
    parts = _fixed_split(10_662)
    assert [len(parts[s]) for s in ("train", "dev", "test")] == [8_529, 1_066, 1_067]
    assert sorted(parts["train"] + parts["dev"] + parts["test"]) == list(range(10_662))
    assert _fixed_split(10_662) == parts


def test_clinc_labels_and_oos(tasks, data_dir):
    clinc, oos = tasks("clinc150"), tasks("clinc150-oos")
    intents = (data_dir / "clinc150/intents.txt").read_text().split()
    assert clinc.label_names == intents
    assert oos.label_names == intents + ["oos"]
    for split, per_intent in (("train", 100), ("dev", 20), ("test", 30)):
        assert set(labels_of(clinc.load(split)).values()) == {per_intent}
    assert [labels_of(oos.load(s))[150] for s in ("train", "dev", "test")] == [100, 100, 1_000]
    assert oos.load("test")[4_500].idx == 4_500  # oos rows follow the in-scope rows


# ------------------------------------------------------------------ limit


def test_limit_is_seeded_sorted_subset(tasks):
    sst2 = tasks("sst2")
    full = sst2.load("train")
    a = sst2.load("train", limit=100, seed=3)
    assert len(a) == 100
    assert [e.idx for e in a] == sorted(e.idx for e in a)
    assert len({e.idx for e in a}) == 100
    assert [e.idx for e in sst2.load("train", limit=100, seed=3)] == [e.idx for e in a]
    assert [e.idx for e in sst2.load("train", limit=100, seed=4)] != [e.idx for e in a]
    for e in a:  # idx points into the full split
        assert (full[e.idx].text_a, full[e.idx].label) == (e.text_a, e.label)
    assert len(sst2.load("dev", limit=10_000)) == 872
    with pytest.raises(DataError, match="limit"):
        sst2.load("dev", limit=0)


def test_load_returns_fresh_examples(tasks):
    rte = tasks("rte")
    first = rte.load("dev")[0]
    first.label = 99
    assert rte.load("dev")[0].label != 99


# ------------------------------------------------------------------ generic file tasks


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_generic_tsv_keeps_na_null_and_quotes(tmp_path):
    f = write(tmp_path / "x.tsv", 'sentence\tlabel\nNA\tpos\nnull\tneg\n"quoted start\tpos\n\tneg\nNone\tpos\n')
    task = get_task(str(f), text_a="sentence")
    assert task.name == "x" and task.splits == ["train"] and task.label_names == ["neg", "pos"]
    ex = task.load("train")
    assert [e.text_a for e in ex] == ["NA", "null", '"quoted start', "", "None"]
    assert [e.label for e in ex] == [1, 0, 1, 0, 1]


def test_generic_routing_and_splits(tmp_path):
    train = write(tmp_path / "tr.csv", 'q,a,y\n"hi, there","x\ny",1\nb,c,0\n')
    dev = write(tmp_path / "dv.csv", "q,a,y\nd,e,1\n")
    task = get_task(f"file:{train}", text_a="q", text_b="a", label="y", dev_path=str(dev))
    assert task.name == "tr" and task.splits == ["train", "dev"] and task.is_pair
    assert task.label_names == ["0", "1"]
    assert task.load("train")[0] == Example("hi, there", "x\ny", 1, 0)
    assert task.load("dev") == [Example("d", "e", 1, 0)]
    assert generic_task(str(train), text_a="q", label="y", name="mine").name == "mine"


def test_generic_label_names_by_name_or_index(tmp_path):
    f = write(tmp_path / "x.tsv", "text\tlabel\na\t0\nb\tpositive\n")
    task = generic_task(str(f), text_a="text", label_names=["negative", "positive"])
    assert [e.label for e in task.load("train")] == [0, 1]


def test_generic_integer_labels_sorted_numerically(tmp_path):
    rows = "".join(f"t{i}\t{i}\n" for i in (2, 10, 0, 1))
    task = generic_task(str(write(tmp_path / "x.tsv", "text\tlabel\n" + rows)), text_a="text")
    assert task.label_names == ["0", "1", "2", "10"]
    assert [e.label for e in task.load("train")] == [2, 3, 0, 1]


def test_generic_jsonl_json_regression(tmp_path):
    jl = write(tmp_path / "r.jsonl", '{"s": "a", "t": "b", "score": 1.5}\n\n{"s": "null", "t": "c", "score": "2"}\n')
    task = generic_task(str(jl), text_a="s", text_b="t", label="score", regression=True)
    assert task.is_regression and task.metrics == ["pearson", "spearman"]
    assert [(e.text_a, e.label) for e in task.load("train")] == [("a", 1.5), ("null", 2.0)]
    js = write(tmp_path / "c.json", json.dumps([{"text": "x", "label": True}, {"text": "y", "label": False}]))
    task = generic_task(str(js), text_a="text")
    assert task.label_names == ["false", "true"]
    assert [e.label for e in task.load("train")] == [1, 0]


def test_generic_quoted_tsv_format(tmp_path):
    f = write(tmp_path / "x.txt", 'sentence\tlabel\n"multi\nline\twith tab"\t1\nplain\t0\n')
    task = generic_task(str(f), text_a="sentence", fmt="tsv-quoted")
    assert [e.text_a for e in task.load("train")] == ["multi\nline\twith tab", "plain"]


def test_in_memory_task():
    t = Task.from_examples("toy", {"train": [("a", None, 0), Example("b", None, 1, 7)]}, ["n", "p"])
    assert t.load("train") == [Example("a", None, 0, 0), Example("b", None, 1, 1)]
    assert t.metrics == ["accuracy"] and not t.is_pair and t.splits == ["train"]
    assert t.compute_metrics([0, 0], [0, 1]) == {"accuracy": 0.5}


# ------------------------------------------------------------------ readers


def test_read_csv_quoted_line_numbers(tmp_path):
    f = write(tmp_path / "x.csv", 'a,b\n"1\n2",x\n\ny,z\n')
    t = readers.read_csv_quoted(f)
    assert t.columns == ["a", "b"] and t.rows == [["1\n2", "x"], ["y", "z"]] and t.lines == [2, 5]


def test_read_tsv_no_header_and_bom(tmp_path):
    f = tmp_path / "x.tsv"
    f.write_bytes(b"\xef\xbb\xbfa\tb\r\nNA\t\n")
    t = readers.read_tsv(f, header=False)
    assert t.columns is None and t.rows == [["a", "b"], ["NA", ""]]


# ------------------------------------------------------------------ errors (one line each)


def raises(match: str):
    class _Ctx:
        def __enter__(self):
            self.cm = pytest.raises(DataError, match=match)
            self.info = self.cm.__enter__()
            return self.info

        def __exit__(self, *exc):
            out = self.cm.__exit__(*exc)
            assert "\n" not in str(self.info.value), "error messages must be one line"
            return out

    return _Ctx()


def test_error_unknown_task(data_dir):
    with raises(r"unknown task 'sst3' \(did you mean 'sst2'\?\); known: sst2, cola, "):
        get_task("sst3", data_dir=data_dir)
    with raises("'mnli' is not available"):
        get_task("mnli", data_dir=data_dir)


def test_error_missing_data_dir(tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    with raises(f"data directory {missing} does not exist; set --data-dir or LMDISTILL_DATA"):
        get_task("sst2", data_dir=missing)
    monkeypatch.setenv("LMDISTILL_DATA", str(missing))
    with raises(r"\(from LMDISTILL_DATA\) does not exist"):
        resolve_data_dir()
    monkeypatch.delenv("LMDISTILL_DATA")
    with raises("no data directory given; set --data-dir or LMDISTILL_DATA"):
        resolve_data_dir()
    assert resolve_data_dir(tmp_path) == tmp_path.resolve()


def test_error_missing_file(tmp_path):
    task = get_task("rte", data_dir=tmp_path)  # directory exists but holds no data
    with raises(f"file {tmp_path / 'glue' / 'RTE' / 'train.tsv'} does not exist"):
        task.load("train")
    with raises("does not exist"):
        get_task(str(tmp_path / "absent.tsv"), text_a="sentence")


def test_error_missing_column(tmp_path):
    f = write(tmp_path / "file.csv", "a,b\nx,1\ny,0\n")
    with raises(rf"column 'text' not in {f} \(columns: a, b\)"):
        generic_task(str(f), text_a="text", label="b").load("train")
    with raises(rf"column 'label' not in {f} \(columns: a, b\)"):
        generic_task(str(f), text_a="a")
    jl = write(tmp_path / "x.jsonl", '{"a": "x", "label": 1}\n')
    with raises(rf"column 'text' not in {jl} line 1 \(columns: a, label\)"):
        generic_task(str(jl), text_a="text", label_names=["n", "p"]).load("train")
    short = write(tmp_path / "short.tsv", "text\tlabel\nok\t1\nonly-text\n")
    with raises(rf"{short} line 3 has 1 fields, so column 'label' is missing"):
        generic_task(str(short), text_a="text", label_names=["n", "p"]).load("train")


def test_error_label_out_of_set(tmp_path):
    train = write(tmp_path / "train.tsv", "sentence\tlabel\na\tnegative\nb\tpositive\n")
    dev = write(tmp_path / "dev.tsv", "sentence\tlabel\nc\tpositive\nd\tmaybe\n")
    task = generic_task(str(train), text_a="sentence", dev_path=str(dev))
    with raises(rf"label 'maybe' in {dev} line 3 is not in the label set \[negative, positive\]"):
        task.load("dev")
    reg = write(tmp_path / "reg.tsv", "s\tscore\na\t1.0\nb\thigh\n")
    with raises("label 'high' .* is not a number"):
        generic_task(str(reg), text_a="s", label="score", regression=True).load("train")


def test_error_label_out_of_set_registered(tmp_path):
    d = tmp_path / "glue" / "SST-2"
    d.mkdir(parents=True)
    write(d / "train.tsv", "sentence\tlabel\ngood\t1\nodd\t2\n")
    with raises(r"label '2' in .*train.tsv line 3 is not in the label set \[0=negative, 1=positive\]"):
        get_task("sst2", data_dir=tmp_path).load("train")


def test_error_empty_file(tmp_path):
    header_only = write(tmp_path / "h.tsv", "sentence\tlabel\n")
    with raises(f"no examples in {header_only}"):
        generic_task(str(header_only), text_a="sentence", label_names=["n", "p"]).load("train")
    for name in ("e.tsv", "e.csv", "e.jsonl", "e.json"):
        empty = write(tmp_path / name, "")
        with raises(f"no examples in {empty}"):
            generic_task(str(empty), text_a="sentence")
    with raises("only one label value"):
        generic_task(str(write(tmp_path / "one.tsv", "s\tlabel\na\tx\n")), text_a="s")


def test_error_unknown_split(tasks):
    with raises("task 'qnli' has no split 'train'; available: dev"):
        tasks("qnli").load("train")
    with raises("task 'amazon-dvd' has no split 'test'; available: train, dev, all"):
        tasks("amazon-dvd").load("test")


def test_error_bad_options(data_dir, tmp_path):
    with raises("only apply to file tasks"):
        get_task("sst2", data_dir=data_dir, text_a="sentence")
    f = write(tmp_path / "x.tsv", "s\tlabel\na\t1\nb\t0\n")
    with raises("needs text_a"):
        get_task(str(f))
    with raises("unknown option"):
        get_task(str(f), text_a="s", colour="red")
    with raises("unknown metric 'bleu'"):
        generic_task(str(f), text_a="s", metrics=["bleu"])
    with raises("needs class labels"):
        generic_task(str(f), text_a="s", label="label", regression=True, metrics=["accuracy"])
    with raises("cannot tell the format"):
        generic_task(str(write(tmp_path / "x.dat", "s\n")), text_a="s")


def test_wic_marks_the_target_word_in_both_sentences(tasks):
    """WiC rows carry the target word in quotes (as the gloss task marks it) at the indices the
    data file gives; labels are balanced T/F."""
    wic = tasks("wic")
    assert wic.label_names == ["different", "same"] and wic.is_pair
    first = wic.load("train")[0]  # carry V 2-1 "You must carry ..." / "Sound carries ..." F
    assert first.text_a == 'You must " carry " your camping gear .'
    assert first.text_b == 'Sound " carries " well over water .'
    assert first.label == 0
    dev = wic.load("dev")
    assert sum(e.label for e in dev) == 319
    assert all(e.text_a.count('"') >= 2 and e.text_b.count('"') >= 2 for e in dev)
