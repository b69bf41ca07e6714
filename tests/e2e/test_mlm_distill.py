"""Masked-LM teachers and multi-teacher MLM distillation end to end on real WikiText-2 blocks,
with tiny real-vocabulary BERTs: an MLM head trained on a frozen encoder, a hub-style MLM
(a random BertForMaskedLM saved locally, loaded unchanged), distillation from both with
per-token weighting (online and cached), the CLI, and resume after a kill."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from conftest import make_tiny_mlm
from lmdistill import api
from lmdistill import config as C
from lmdistill.cli import main as cli_main
from lmdistill.errors import ConfigError, ModelError
from lmdistill.methods.kd.run import distill
from lmdistill.methods.mlm.run import evaluate_mlm_model, load_mlm_model

DATA = {"data.task": "mlm:wikitext2", "data.mlm_block_size": 32, "data.mlm_max_blocks": 240,
        "data.mlm_heldout": 0.15}
TRAIN = {"train.batch_size": 16, "train.progress": False, "train.num_threads": 1,
         "train.eval_batch_size": 32, "train.log_every": 1}


@pytest.fixture(scope="module")
def hub_mlm(tiny_bert, tmp_path_factory):
    """A 'real hub MLM': a BertForMaskedLM with its own (random) head, saved locally."""
    return make_tiny_mlm(tiny_bert, tmp_path_factory.mktemp("hub-mlm"), seed=3)


@pytest.fixture(scope="module")
def head_teacher(tiny_bert, tmp_path_factory):
    out = tmp_path_factory.mktemp("mlm-head")
    res = api.finetune(C.build(C.FinetuneConfig, overrides={
        **DATA, **TRAIN, "output_dir": str(out), "model.name": str(tiny_bert),
        "model.freeze_encoder": True, "train.max_steps": 12, "train.lr": 5e-3,
        "train.eval_every": 6}))
    return out, res


def test_mlm_head_on_a_frozen_encoder(head_teacher, tiny_bert):
    out, res = head_teacher
    assert res["task"] == "mlm:wikitext2" and res["steps"] == 12
    assert 0 < res["trainable_params"] < res["params"] / 2  # the head only
    assert res["masked_tokens"] > 50 and res["mlm_loss"] > 0
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["type"] == "eval"]
    assert [e["step"] for e in evals] == [6, 12]
    assert evals[-1]["mlm_loss"] < evals[0]["mlm_loss"]  # the head learns
    # the encoder did not move: same weights as the base
    from transformers import BertModel

    base = BertModel.from_pretrained(str(tiny_bert)).state_dict()
    saved = load_mlm_model(str(out / "model")).state_dict()
    for k in ("encoder.layer.0.attention.self.query.weight", "embeddings.word_embeddings.weight"):
        assert torch.equal(saved["bert." + k], base[k])
    again = evaluate_mlm_model(str(out / "model"), "mlm:wikitext2", block_size=32,
                               heldout=0.15, max_blocks=240)
    best = next(e for e in evals if e["step"] == res["best_step"])
    assert again["mlm_accuracy"] == pytest.approx(best["mlm_accuracy"])


def test_hub_mlm_keeps_its_head(hub_mlm):
    from transformers import BertForMaskedLM

    m = load_mlm_model(str(hub_mlm))
    ref = BertForMaskedLM.from_pretrained(str(hub_mlm))
    assert torch.equal(m.cls.predictions.transform.dense.weight,
                       ref.cls.predictions.transform.dense.weight)


@pytest.mark.parametrize("static", [False, True])
def test_two_teacher_gold_distillation(head_teacher, hub_mlm, tmp_path, static):
    out, _ = head_teacher
    cfg = C.build(C.DistillConfig, overrides={
        **DATA, **TRAIN, "output_dir": str(tmp_path / "s"), "teacher.name": str(out / "model"),
        "teacher.names": [str(hub_mlm)], "teacher.strategy": "gold",
        "teacher.cache_dir": str(tmp_path / "cache"), "teacher.topk": 8,
        "data.mlm_static": static, "student.num_layers": 1, "train.max_steps": 6,
        "train.eval_every": 3, "kd.alpha": 0.5})
    res = distill(cfg)
    assert res["teachers"] == [str(out / "model"), str(hub_mlm)]
    assert res["teacher_cache"] == ([False, False] if static else [None, None])
    recs = [json.loads(x) for x in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["type"] == "train"]
    assert len(train) == 6 and all({"hard", "soft", "w_teacher0", "w_teacher1"} <= set(r)
                                   for r in train)
    assert all(abs(r["w_teacher0"] + r["w_teacher1"] - 1) < 1e-5 for r in train)
    assert [r["step"] for r in recs if r["type"] == "eval"] == [3, 6]
    if static:  # a second run reads every teacher from the cache
        cfg2 = cfg.model_copy(update={"output_dir": str(tmp_path / "s2")})
        assert distill(cfg2)["teacher_cache"] == [True, True]


def test_mlm_distill_resumes_after_a_kill_to_the_same_weights(head_teacher, hub_mlm, tmp_path):
    out, _ = head_teacher
    cfg = C.build(C.DistillConfig, overrides={
        **DATA, **TRAIN, "output_dir": str(tmp_path / "r"), "teacher.name": str(out / "model"),
        "teacher.names": [str(hub_mlm)], "teacher.strategy": "entropy",
        "student.num_layers": 1, "train.max_steps": 8, "train.save_every": 2,
        "train.keep_checkpoints": 10, "train.eval_every": 4})
    distill(cfg)
    ck = tmp_path / "r" / "checkpoints"
    ref = load_file(str(ck / "step-00000008" / "model.safetensors"))
    for c in sorted(ck.iterdir()):
        if int(c.name.split("-")[1]) > 4:
            shutil.rmtree(c)
    assert distill(cfg, resume=True)["steps"] == 8
    got = load_file(str(ck / "step-00000008" / "model.safetensors"))
    for k in ref:
        assert torch.equal(got[k], ref[k]), k


def test_cli_and_bad_input(head_teacher, tiny_bert, tmp_path, capsys):
    out, _ = head_teacher
    args = ["distill", "--task", "mlm:wikitext2", "--teacher", str(out / "model"),
            "--teacher", str(out / "model"), "--strategy", "confidence", "--layers", "1",
            "--max-steps", "2", "--out", str(tmp_path / "c"), "-o", "data.mlm_block_size=32",
            "-o", "data.mlm_max_blocks=120", "-o", "train.progress=false",
            "-o", "data.mlm_heldout=0.2"]
    cli_main(args)
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["strategy"] == "confidence"
    with pytest.raises(SystemExit):
        cli_main(["finetune", "--task", "mlm:no-such-corpus", "--model", str(tiny_bert),
                  "--out", str(tmp_path / "x")])
    assert "unknown corpus 'no-such-corpus'" in capsys.readouterr().err
    with pytest.raises(ModelError, match="no trained MLM head"):
        distill(C.build(C.DistillConfig, overrides={
            **DATA, **TRAIN, "output_dir": str(tmp_path / "n"),
            "teacher.name": str(tiny_bert)}))
    with pytest.raises(ConfigError, match="logit KD only"):
        distill(C.build(C.DistillConfig, overrides={
            **DATA, **TRAIN, "output_dir": str(tmp_path / "f"), "kd.features": ["hidden"],
            "teacher.name": str(out / "model")}))


def test_evaluate_command_on_an_mlm_task(head_teacher):
    out, _ = head_teacher
    from lmdistill.data.mlm import WholeWordMasker, load_mlm
    from lmdistill.models import hub

    res = api.evaluate(str(out / "model"), "mlm:wikitext2", limit=240)
    tok = hub.load_tokenizer(str(out / "model"))
    _, held = load_mlm("mlm:wikitext2", tok, 128, 0.05, max_blocks=240)
    m = WholeWordMasker(tok, 0.15, 0)
    n = sum(int((m(held, [i], None)["labels"] != -100).sum()) for i in range(len(held)))
    assert res["corpus"] == "mlm:wikitext2" and res["masked_tokens"] == n > 0
