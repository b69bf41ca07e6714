"""End to end: ``lmdistill distill`` on real SST-2 / STS-B rows with tiny real-vocabulary BERT
teachers fine-tuned here: logit KD, intermediate-layer KD, the teacher cache, several teachers,
every student kind, unlabelled extra text, a bring-your-own teacher and the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lmdistill import api
from lmdistill import config as C
from lmdistill.cli import main as cli_main
from lmdistill.data.tasks import get_task
from lmdistill.errors import ConfigError
from lmdistill.methods.kd.run import distill
from lmdistill.models import hub
from conftest import make_tiny_bert

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
LIMIT, EVAL_LIMIT, MAX_LEN = 64, 64, 32


def _unit_helpers():
    """The word-level (different tokenizer) teacher of the unit tests."""
    path = Path(__file__).resolve().parents[1] / "unit" / "test_teachers.py"
    spec = importlib.util.spec_from_file_location("_lmdistill_teacher_helpers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def finetuned(model: Path, out: Path, task: str = "sst2", seed: int = 42, limit: int = 256):
    cfg = C.build(C.FinetuneConfig, overrides={
        "output_dir": str(out), "model.name": str(model), "data.task": task,
        "data.limit": limit, "data.eval_limit": EVAL_LIMIT, "data.max_length": MAX_LEN,
        "train.batch_size": 32, "train.epochs": 1, "train.lr": 2e-3, "train.seed": seed,
        "train.progress": False, "train.num_threads": 1})
    api.finetune(cfg)
    return out / "model"


@pytest.fixture(scope="module")
def teacher(tiny_bert, tmp_path_factory):
    return finetuned(tiny_bert, tmp_path_factory.mktemp("teacher-a") / "run")


@pytest.fixture(scope="module")
def teacher_b(tmp_path_factory):
    base = make_tiny_bert(tmp_path_factory.mktemp("tiny-bert-b"), seed=1)
    return finetuned(base, tmp_path_factory.mktemp("teacher-b") / "run", seed=7)


def dcfg(teacher, out: Path, **over) -> C.DistillConfig:
    base = {"output_dir": str(out), "teacher.name": str(teacher) if teacher else None,
            "teacher.cache_dir": str(out.parent / "cache"), "data.task": "sst2",
            "data.limit": LIMIT, "data.eval_limit": EVAL_LIMIT, "data.max_length": MAX_LEN,
            "student.num_layers": 1, "train.batch_size": 16, "train.epochs": 1,
            "train.lr": 1e-3, "train.log_every": 1, "train.progress": False,
            "train.num_threads": 1}
    base.update(over)
    return C.build(C.DistillConfig, overrides=base)


def log_of(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]


def reevaluates_exactly(run: Path, res: dict, task: str = "sst2"):
    metric = get_task(task).primary_metric
    ev = api.evaluate(str(run / "model"), task, "dev", limit=EVAL_LIMIT, max_length=MAX_LEN,
                      progress=False)
    assert ev["examples"] == EVAL_LIMIT
    assert ev[metric] == pytest.approx(res[metric], abs=1e-9)


def test_logit_kd_subset_student(teacher, tmp_path):
    run = tmp_path / "run"
    res = distill(dcfg(teacher, run))
    for f in ("config.yaml", "metrics.json", "metrics.jsonl", "model/config.json",
              "model/model.safetensors", "model/tokenizer.json"):
        assert (run / f).exists(), f
    saved = json.loads((run / "metrics.json").read_text())
    assert saved == res
    assert res["teachers"] == [str(teacher)] and res["student_kind"] == "subset"
    assert 0 < res["student_params"] < res["teacher_params"]
    assert res["train_examples"] == LIMIT and res["steps"] == LIMIT // 16
    assert res["teacher_cache"] == [False]
    cfg = C.build(C.DistillConfig, run / "config.yaml")
    assert cfg.student.num_layers == 1 and cfg.teacher.name == str(teacher)
    student = hub.load_classifier(str(run / "model"), 2)
    assert student.config.num_hidden_layers == 1
    reevaluates_exactly(run, res)
    train = [r for r in log_of(run) if r["type"] == "train"]
    assert len(train) == res["steps"] and {"loss", "soft", "hard"} <= set(train[0])
    assert "inter" not in train[0]


def test_intermediate_kd_logs_inter(teacher, tmp_path):
    run = tmp_path / "run"
    res = distill(dcfg(teacher, run, **{
        "kd.features": ["hidden", "attention", "value_relation"], "kd.relation_heads": 2}))
    train = [r for r in log_of(run) if r["type"] == "train"]
    assert train and all("inter" in r and r["inter"] > 0 for r in train)
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in train)
    reevaluates_exactly(run, res)  # the reported metric is the saved model's
    # projections are dropped at export unless kept (widths are equal here anyway)
    assert not (run / "model" / "projections.safetensors").exists()
    # the default 12 relation heads do not divide the tiny width 32: refused before training
    with pytest.raises(ConfigError, match="relation_heads=12 does not divide"):
        distill(dcfg(teacher, tmp_path / "bad", **{"kd.features": ["value_relation"]}))
    assert not (tmp_path / "bad" / "metrics.jsonl").exists()


def test_second_run_uses_the_teacher_cache(teacher, tmp_path):
    cache = tmp_path / "teacher-cache"
    a = distill(dcfg(teacher, tmp_path / "a", **{"teacher.cache_dir": str(cache)}))
    assert a["teacher_cache"] == [False]
    entries = [p for p in cache.iterdir()]
    assert len(entries) == 1 and len(list(entries[0].glob("shard-*.json"))) == 1
    b = distill(dcfg(teacher, tmp_path / "b", **{"teacher.cache_dir": str(cache)}))
    assert b["teacher_cache"] == [True]
    assert [p for p in cache.iterdir()] == entries
    # the cached teacher outputs are the same signal: the same run, the same result
    assert a["accuracy"] == b["accuracy"]
    from safetensors.torch import load_file

    wa = load_file(str(tmp_path / "a/model/model.safetensors"))
    wb = load_file(str(tmp_path / "b/model/model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_two_teachers_gold(teacher, teacher_b, tmp_path):
    res = distill(dcfg(teacher, tmp_path / "g", **{"teacher.names": [str(teacher_b)],
                                                   "teacher.strategy": "gold"}))
    assert res["teachers"] == [str(teacher), str(teacher_b)]
    assert res["teacher_cache"] == [False, False]
    assert res["teacher_devices"] == ["cpu", "cpu"]  # both cache passes ran here
    assert res["steps"] == LIMIT // 16
    reevaluates_exactly(tmp_path / "g", res)
    with pytest.raises(ConfigError, match="'fixed' needs 2 weights"):
        distill(dcfg(teacher, tmp_path / "f", **{"teacher.names": [str(teacher_b)],
                                                 "teacher.strategy": "fixed"}))


def test_bilstm_student(teacher, tmp_path):
    with pytest.raises(ConfigError, match="BiLSTM"):
        distill(dcfg(teacher, tmp_path / "x", **{"student.kind": "bilstm",
                                                 "kd.features": ["hidden"]}))
    run = tmp_path / "lstm"
    res = distill(dcfg(teacher, run, **{"student.kind": "bilstm", "student.lstm_hidden": 16,
                                        "student.mlp_hidden": 16}))
    assert res["student_kind"] == "bilstm"
    loaded = hub.load_classifier(str(run / "model"), 2)
    assert type(loaded).__name__ == "BiLSTMForSequenceClassification"
    assert loaded.config.lstm_hidden == 16
    reevaluates_exactly(run, res)


def test_shared_layer_student(teacher, tmp_path):
    run = tmp_path / "shared"
    res = distill(dcfg(teacher, run, **{"student.kind": "shared", "student.num_layers": 2,
                                        "student.num_unique": 1}))
    loaded = hub.load_classifier(str(run / "model"), 2)
    assert loaded.config.model_type == "lmdistill-shared-bert"
    assert loaded.config.num_hidden_layers == 2 and loaded.config.num_unique_layers == 1
    assert res["student_params"] < res["teacher_params"]
    reevaluates_exactly(run, res)


def test_regression_stsb(tiny_bert, tmp_path):
    t = finetuned(tiny_bert, tmp_path / "stsb-teacher", task="stsb", limit=64)
    run = tmp_path / "r"
    res = distill(dcfg(t, run, **{"data.task": "stsb"}))
    assert res["task"] == "stsb"
    reevaluates_exactly(run, res, "stsb")
    assert pearson_by_scipy(run / "model") == pytest.approx(res["pearson"], abs=1e-5)


def pearson_by_scipy(model_dir):
    """Pearson of the saved model's predictions on the first STS-B dev rows, by scipy."""
    from scipy.stats import pearsonr

    from lmdistill.data.collate import collate, encode

    tok = hub.load_tokenizer(str(model_dir))
    enc = encode(get_task("stsb").load("dev", limit=EVAL_LIMIT), tok, MAX_LEN)
    m = hub.load_classifier(str(model_dir)).eval()
    b = collate(enc, list(range(len(enc))), with_labels=False)
    with torch.no_grad():
        pred = m(**{k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")
                    if k in b}).logits.reshape(-1).numpy()
    return float(pearsonr(pred, enc.labels)[0])


def test_extra_texts_are_added(teacher, tmp_path):
    extra = ["an unlabeled sentence", "another sentence nobody labelled",
             "a third one , quite long and rather pleasant to read"]
    run = tmp_path / "x"
    res = distill(dcfg(teacher, run), extra_texts=extra)
    assert res["train_examples"] == LIMIT + len(extra)
    assert res["examples_seen"] == LIMIT + len(extra)
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in log_of(run)
               if r["type"] == "train")


def test_cli_unlabelled_file_never_gets_a_hard_loss(teacher, tmp_path):
    f = tmp_path / "unl.txt"
    f.write_text("an unlabeled sentence\nanother one nobody labelled\n\nand a third\n")
    run = tmp_path / "u"
    cli_main(["distill", "--task", "sst2", "--teacher", str(teacher), "--layers", "1",
              "--limit", str(LIMIT), "--eval-limit", str(EVAL_LIMIT), "--epochs", "1",
              "--out", str(run), "--unlabelled", str(f), "-o", "train.progress=false",
              "-o", f"teacher.cache_dir={tmp_path / 'cache'}"])
    assert json.loads((run / "metrics.json").read_text())["train_examples"] == LIMIT + 3
    # a batch of only unlabelled rows: no hard term, the loss is alpha * soft
    from lmdistill.methods.kd.objective import KDObjective
    from lmdistill.models import hub
    from lmdistill.teachers import Needs, OnlineTeacher

    t = hub.load_classifier(str(teacher)).eval()
    obj = KDObjective(hub.load_classifier(str(teacher)).eval(), OnlineTeacher(t, Needs()),
                      alpha=0.7, temperature=2.0)
    batch = {"input_ids": torch.tensor([[101, 2023, 102], [101, 2204, 102]]),
             "attention_mask": torch.ones(2, 3, dtype=torch.long),
             "labels": torch.tensor([-100, -100]), "index": torch.tensor([0, 1])}
    out = obj(batch)
    assert float(out["hard"]) == 0.0
    assert float(out["loss"].detach()) == pytest.approx(0.7 * float(out["soft"]))


def test_cli_unlabelled_split_adds_the_tasks_test_texts_without_labels(teacher, tmp_path):
    """`--unlabelled-split test`: the test split's texts join the training rows unlabelled
    (a batch of them carries no labels); the training split is refused."""
    from lmdistill.data.collate import collate, encode
    from lmdistill.methods.kd.run import split_texts
    from lmdistill.models import hub

    run = tmp_path / "us"
    cli_main(["distill", "--task", "rt", "--teacher", str(teacher), "--layers", "1",
              "--limit", str(LIMIT), "--eval-limit", str(EVAL_LIMIT), "--max-steps", "2",
              "--out", str(run), "--unlabelled-split", "test", "-o", "train.progress=false",
              "-o", f"teacher.cache_dir={tmp_path / 'cache'}"])
    res = json.loads((run / "metrics.json").read_text())
    test = get_task("rt").load("test")
    assert res["unlabelled_rows"] == len(test) == 1067
    assert res["train_examples"] == LIMIT + len(test)
    cfg = dcfg(teacher, tmp_path / "x", **{"data.task": "rt", "data.unlabelled_splits": ["test"]})
    texts = split_texts(get_task("rt"), cfg.data)
    assert texts == [e.text_a for e in test]
    from lmdistill.data.tasks import Example

    enc = encode([Example(t, None, None, -1 - i) for i, t in enumerate(texts[:8])],
                 hub.load_tokenizer(str(teacher)), MAX_LEN)
    assert "labels" not in collate(enc, list(range(8)))  # no label: no hard loss
    with pytest.raises(ConfigError, match="training split"):
        split_texts(get_task("rt"), dcfg(teacher, tmp_path / "y", **{
            "data.unlabelled_splits": ["train"]}).data)
    with pytest.raises(ConfigError, match="no split 'nope'"):
        split_texts(get_task("rt"), dcfg(teacher, tmp_path / "z", **{
            "data.unlabelled_splits": ["nope"]}).data)


def test_kd_augment_adds_eda_copies_of_the_run_rows_as_teacher_labelled_text(teacher, tmp_path):
    """`kd.augment=eda`: augment_copies EDA copies of each of the run's (seeded) training rows
    join the transfer set unlabelled — the same copies `lmdistill augment` writes for those
    rows and seed — and the run trains on rows + copies."""
    from lmdistill.augment.run import make_augmenter
    from lmdistill.methods.kd.run import augmented_texts

    cfg = dcfg(teacher, tmp_path / "aug", **{"kd.augment": "eda", "kd.augment_copies": 2,
                                              "train.max_steps": 2})
    res = distill(cfg)
    assert res["unlabelled_rows"] == 2 * LIMIT
    assert res["train_examples"] == 3 * LIMIT
    rows = get_task("sst2").load("train", limit=LIMIT, seed=cfg.train.seed)
    want = [t for _, t in make_augmenter("eda", None, 2)([e.text_a for e in rows],
                                                         cfg.train.seed)]
    assert augmented_texts(rows, cfg) == want
    assert len(set(want) - {e.text_a for e in rows}) > LIMIT  # real edits, not copies
    assert augmented_texts(rows, dcfg(teacher, tmp_path / "none")) == []


def test_teacher_fn_with_another_tokenizer(tiny_bert, tmp_path):
    helpers = _unit_helpers()
    rows = get_task("sst2").load("train", limit=LIMIT, seed=42)  # the run's seeded subset
    fn, wtok, _ = helpers.word_teacher([e.text_a for e in rows], seed=3)
    seen: list = []

    def teacher_fn(texts):
        seen.extend(texts)
        return fn(texts)

    run = tmp_path / "fn"
    res = distill(dcfg(None, run, **{"student.base": str(tiny_bert)}), teacher_fn=teacher_fn)
    assert res["teachers"] == ["callable0"] and res["teacher_cache"] == [None]
    assert res["teacher_params"] is None
    dev = {e.text_a for e in get_task("sst2").load("dev", limit=EVAL_LIMIT)}
    # raw text, every training row, and the eval rows once (the teacher's dev diagnosis)
    assert sorted(set(seen)) == sorted({e.text_a for e in rows} | dev)
    assert len(wtok) < 5000  # a vocabulary of its own, not BERT's
    reevaluates_exactly(run, res)
    with pytest.raises(ConfigError, match="exactly one HF teacher"):
        distill(dcfg(None, tmp_path / "fn2", **{"student.base": str(tiny_bert),
                                                 "kd.features": ["hidden"]}),
                teacher_fn=teacher_fn)


def test_callable_teacher_is_called_once_per_text_across_epochs_and_runs(tiny_bert, tmp_path):
    helpers = _unit_helpers()
    rows = get_task("sst2").load("train", limit=LIMIT, seed=42)
    fn, _, _ = helpers.word_teacher([e.text_a for e in rows], seed=3)
    calls: list = []

    def teacher_fn(texts):
        calls.extend(texts)
        return fn(texts)

    over = {"student.base": str(tiny_bert), "train.epochs": 2}
    res = distill(dcfg(None, tmp_path / "a", **over), teacher_fn=teacher_fn,
                  teacher_ids=["word-teacher-v1"])
    dev = {e.text_a for e in get_task("sst2").load("dev", limit=EVAL_LIMIT)}
    # once per text over two epochs: the training rows and the eval rows (the diagnosis)
    assert sorted(calls) == sorted({e.text_a for e in rows} | dev)
    assert res["teacher_cache"] == [0]  # nothing was cached before
    calls.clear()
    res2 = distill(dcfg(None, tmp_path / "b", **over), teacher_fn=teacher_fn,
                   teacher_ids=["word-teacher-v1"])
    assert calls == [] and res2["teacher_cache"] == [len(rows)]  # a second run: no calls
    assert res2["accuracy"] == pytest.approx(res["accuracy"])  # same soft targets, same run
    with pytest.raises(ConfigError, match="teacher_ids"):
        distill(dcfg(None, tmp_path / "c", **over), teacher_fn=teacher_fn,
                teacher_ids=["a", "b"])


def test_auto_temperature_from_the_teachers_calibration(teacher, tmp_path):
    res = distill(dcfg(teacher, tmp_path / "auto", **{"kd.temperature": "auto"}))
    tau, cal = res["kd_temperature"], res["teacher_calibration"]
    assert 0.5 <= tau <= 10 and cal["rows"] == EVAL_LIMIT
    assert cal["nll_fit"] <= cal["nll"] + 1e-6  # the fitted τ is no worse than τ = 1
    cfg = yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())
    assert cfg["kd"]["temperature"] == "auto"
    from lmdistill.methods.kd.calibration import auto_temperature

    with pytest.raises(ConfigError, match="regression"):
        auto_temperature(get_task("stsb"), None, None)


def test_hf_teacher_with_another_tokenizer(tiny_bert, tmp_path):
    """A saved HF classifier with its own (word-level) tokenizer as teacher.name: logit KD
    through its tokenizer; intermediate KD is refused."""
    helpers = _unit_helpers()
    rows = get_task("sst2").load("train", limit=LIMIT, seed=42)
    _, wtok, wmodel = helpers.word_teacher([e.text_a for e in rows], seed=4)
    folder = tmp_path / "word-teacher"
    wmodel.save_pretrained(folder)
    wtok.save_pretrained(folder)
    over = {"student.base": str(tiny_bert)}
    res = distill(dcfg(folder, tmp_path / "w", **over))
    assert res["teacher_cache"] == [None]  # read through its own tokenizer, not cached
    assert res["teacher_params"] < res["student_params"]
    with pytest.raises(ConfigError, match="different tokenizer"):
        distill(dcfg(folder, tmp_path / "w2", **over, **{"kd.features": ["hidden"]}))


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lmdistill", *args], env=ENV, text=True,
                          capture_output=True, timeout=300)


def test_cli_distill(teacher, tmp_path):
    out = tmp_path / "cli"
    p = cli("distill", "--task", "sst2", "--teacher", str(teacher), "--layers", "1",
            "--limit", str(LIMIT), "--eval-limit", str(EVAL_LIMIT), "--epochs", "1",
            "--batch-size", "16", "--out", str(out), "-o", f"teacher.cache_dir={tmp_path / 'c'}",
            "-o", f"data.max_length={MAX_LEN}", "-o", "train.progress=false")
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout)
    assert res["student_kind"] == "subset" and res["steps"] == LIMIT // 16
    assert res == json.loads((out / "metrics.json").read_text())
    assert hub.load_classifier(str(out / "model"), 2).config.num_hidden_layers == 1



def test_cli_unknown_student_kind_is_one_line(teacher, tmp_path, capsys):
    from lmdistill.cli import main  # what `python -m lmdistill` runs (in process: no startup)

    with pytest.raises(SystemExit) as e:
        main(["distill", "--task", "sst2", "--teacher", str(teacher), "--student", "tiny",
              "--out", str(tmp_path / "bad")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "student.kind" in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "bad").exists()


def test_default_schedule_runs_until_neither_metric_nor_agreement_improves(teacher, tmp_path):
    """Issue 26: distill's default schedule evaluates every epoch and stops after 2 epochs in
    which neither the dev metric nor the agreement with the teacher improved (lr 0: nothing
    changes, so it stops at the third epoch of its 10); the result and the log say why."""
    d = C.DistillConfig().train
    assert (d.epochs, d.eval_each_epoch, d.early_stopping_patience, d.early_stopping_also) == \
        (10.0, True, 2, ["teacher_agreement"])
    over = {"train.epochs": 10, "train.eval_each_epoch": True,
            "train.early_stopping_patience": 2,
            "train.early_stopping_also": ["teacher_agreement"]}
    run = tmp_path / "stall"
    res = distill(dcfg(teacher, run, **over, **{"train.lr": 0.0}))
    steps_per_epoch = LIMIT // 16
    assert res["steps"] == 3 * steps_per_epoch
    assert res["stopped"].startswith(f"early stopping at step {3 * steps_per_epoch}")
    assert "accuracy or teacher_agreement" in res["stopped"]
    evals = [r for r in log_of(run) if r["type"] == "eval"]
    assert [r["step"] for r in evals] == [steps_per_epoch * i for i in (1, 2, 3)]
    # a schedule that ends first says so
    res = distill(dcfg(teacher, tmp_path / "full", **{**over, "train.epochs": 2}))
    assert res["steps"] == 2 * steps_per_epoch
    assert res["stopped"] == f"ran its whole schedule ({2 * steps_per_epoch} steps, 2 epochs)"
