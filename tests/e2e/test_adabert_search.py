"""AdaBERT end to end on real data slices with a tiny real-vocabulary teacher: the search over
the one loop (alternating optimizers), derive, retrain, evaluate, export, resume, CLI."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from lmdistill import api
from lmdistill import config as C
from lmdistill.cli import main as cli_main
from lmdistill.data.collate import Encoded
from lmdistill.methods.adabert.objective import PROBE_ROW, AdaBertSearchObjective
from lmdistill.models.adabert import OPS, AdaBertConfig, AdaBertForSequenceClassification
from lmdistill.train.loop import Trainer

TINY = {"data.limit": 120, "data.eval_limit": 48, "adabert.max_cells": 3,
        "adabert.hidden": 16, "adabert.probe_epochs": 20, "adabert.cost": "params",
        "train.max_steps": 6, "train.batch_size": 16, "train.progress": False,
        "retrain.max_steps": 4, "retrain.batch_size": 16, "retrain.progress": False,
        "train.num_threads": 1, "retrain.num_threads": 1, "train.log_every": 1}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LMDISTILL_CACHE", str(tmp_path / "cache"))


def _enc(n: int, offset: int = 0) -> Encoded:
    ids = [[101] + [1000 + (i * 7 + j) % 50 for j in range(3 + i % 4)] + [102] for i in range(n)]
    return Encoded(input_ids=ids, token_type_ids=None, labels=[i % 2 for i in range(n)],
                   idx=list(range(n)), texts=[("x", None)] * n, pad_id=0,
                   extras={PROBE_ROW: list(range(offset, offset + n))})


def test_alternating_updates_touch_only_their_own_parameters(tmp_path):
    torch.manual_seed(0)
    cfg = AdaBertConfig(vocab_size=1100, embedding_size=12, hidden=16, max_cells=2,
                        num_labels=2, dropout=0.0)
    model = AdaBertForSequenceClassification(cfg)
    s = C.AdaBertSettings(max_cells=2, hidden=16, arch_start=0.0)
    obj = AdaBertSearchObjective(model, torch.randn(24, 7, 2), [0.4] * 7, [1.0] * len(OPS),
                                 _enc(8, 16), s)
    arch = {id(p) for p in obj.arch_parameters()}
    changed: list[tuple[str, set[str]]] = []
    real = Trainer.step_optimizer

    def spy(self, name=None):
        before = {n: p.detach().clone() for n, p in obj.named_parameters()}
        out = real(self, name)
        moved = {n for n, p in obj.named_parameters() if not torch.equal(before[n], p)}
        changed.append((name, moved))
        return out

    Trainer.step_optimizer = spy
    try:
        tcfg = C.TrainConfig(max_steps=3, batch_size=4, progress=False, lr=1e-2, seed=1)
        Trainer(obj, _enc(16), tcfg, tmp_path / "t").fit()
    finally:
        Trainer.step_optimizer = real
    arch_names = {n for n, p in obj.named_parameters() if id(p) in arch}
    assert arch_names == {"op_logits", "depth_logits"}
    assert [n for n, _ in changed] == ["weights", "arch"] * 3
    for name, moved in changed:
        assert moved, name
        if name == "weights":
            assert not moved & arch_names
        else:
            assert moved == arch_names


def test_architecture_steps_wait_for_the_warm_up(tmp_path):
    torch.manual_seed(0)
    cfg = AdaBertConfig(vocab_size=1100, embedding_size=12, hidden=16, max_cells=2,
                        num_labels=2, dropout=0.0)
    s = C.AdaBertSettings(max_cells=2, hidden=16, arch_start=0.5)
    obj = AdaBertSearchObjective(AdaBertForSequenceClassification(cfg), torch.randn(24, 7, 2),
                                 [0.4] * 7, [1.0] * len(OPS), _enc(8, 16), s)
    names: list[str] = []
    real = Trainer.step_optimizer

    def spy(self, name=None):
        names.append(name)
        return real(self, name)

    Trainer.step_optimizer = spy
    try:
        tcfg = C.TrainConfig(max_steps=4, batch_size=4, progress=False, seed=1)
        Trainer(obj, _enc(16), tcfg, tmp_path / "w").fit()
    finally:
        Trainer.step_optimizer = real
    assert names == ["weights", "weights", "weights", "arch", "weights", "arch"]


def _search_cfg(tmp_path, teacher, task="sst2", **kw):
    return C.build(C.SearchConfig, overrides={**TINY, "output_dir": str(tmp_path / f"s-{task}"),
                                             "data.task": task, "teacher.name": str(teacher),
                                             **kw})


def test_tiny_search_retrain_evaluate_and_outputs(tiny_bert, tmp_path):
    res = api.search(_search_cfg(tmp_path, tiny_bert))
    out = tmp_path / "s-sst2"
    geno = json.loads((out / "architecture.json").read_text())
    assert res["architecture"] == geno and 1 <= geno["cells"] <= 3
    assert all(len(node) == 2 for node in geno["nodes"]) and len(geno["nodes"]) == 3
    assert len(res["probe_loss"]) == 3  # embeddings + the tiny teacher's 2 layers
    costs = json.loads((out / "costs.json").read_text())
    assert costs["kind"] == "params" and sum(costs["normalised"].values()) == pytest.approx(1)
    assert costs["normalised"]["conv7"] == max(costs["normalised"].values())
    # search curves were logged: loss terms, sampled depth, temperature
    recs = [json.loads(x) for x in (out / "stages" / "01-search" / "metrics.jsonl")
            .read_text().splitlines()]
    train = [r for r in recs if r["type"] == "train"]
    assert {"ce", "kd", "eff", "depth", "gumbel_tau", "arch_loss"} <= set(train[-1])
    assert train[-1]["gumbel_tau"] < train[0]["gumbel_tau"]
    # the kept student: an HF folder evaluate / bench / plain transformers take
    ev = api.evaluate(str(out / "model"), "sst2", limit=48, progress=False)
    assert ev["accuracy"] == pytest.approx(res["accuracy"])
    from transformers import AutoModelForSequenceClassification

    m = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert m.config.genotype == geno and not m.searching
    assert (out / "cell.png").exists() and (out / "search_curves.png").exists()
    assert "## AdaBERT" in (out / "report.md").read_text()
    # a finished pipeline resumes to the same result without training again
    again = api.search(_search_cfg(tmp_path, tiny_bert), resume=True)
    assert again["architecture"] == geno and again["accuracy"] == res["accuracy"]


def _dev_logits(ref, task: str, n: int) -> torch.Tensor:
    """The logits of the saved model ``ref`` on the first ``n`` pairs of ``task``'s dev split,
    in one batch (as lmdistill encodes them)."""
    from lmdistill.bench import timing_inputs
    from lmdistill.data.collate import encode
    from lmdistill.data.tasks import get_task
    from lmdistill.models import hub

    ex = get_task(task).load("dev")[:n]
    enc = encode(ex, hub.load_tokenizer(str(ref)), 128)
    m = hub.load_classifier(str(ref)).eval()
    with torch.inference_mode():
        return m(**timing_inputs(enc, n, 1)[0]).logits.float()


def test_pair_task_search_export_and_retrain_from_json(tiny_bert, tmp_path):
    res = api.search(_search_cfg(tmp_path, tiny_bert, "mrpc"))
    out = tmp_path / "s-mrpc"
    assert "f1" in res
    from lmdistill.compress.onnx import export_onnx

    info = export_onnx(out / "model", tmp_path / "onnx")
    assert info["max_abs_diff"] < 1e-4
    from lmdistill.compress.quantize import write_quantized

    write_quantized(str(out / "model"), tmp_path / "int8", "torch-dynamic-int8")
    # both load and evaluate through the same API, and answer like the FP32 model they came
    # from: the same predictions (ONNX FP32), or nearly (INT8), on the same dev pairs
    base = api.evaluate(str(out / "model"), "mrpc", limit=40, progress=False)
    ref = _dev_logits(out / "model", "mrpc", 40)
    # (measured: ONNX 1.5e-8 and INT8 4e-4 max |logit difference|, every prediction the same;
    # this tiny student may predict one class for all 40, so the logits are compared too)
    for d, least, f1_gap, atol in (("onnx", 1.0, 1e-9, 1e-4), ("int8", 0.95, 0.05, 0.05)):
        ev = api.evaluate(str(tmp_path / d), "mrpc", limit=40, progress=False)
        got = _dev_logits(tmp_path / d, "mrpc", 40)
        agree = (got.argmax(-1) == ref.argmax(-1)).float().mean().item()
        assert agree >= least, (d, agree)  # INT8: at most 2 of the 40 pairs flipped
        assert abs(ev["f1"] - base["f1"]) <= f1_gap, (d, ev["f1"], base["f1"])
        torch.testing.assert_close(got, ref, atol=atol, rtol=0)
    # retrain a given architecture without searching (the CLI's --architecture)
    cli_main(["search", "--task", "mrpc", "--teacher", str(tiny_bert), "--out",
              str(tmp_path / "given"), "--architecture", str(out / "architecture.json"),
              "--limit", "80", "--max-steps", "2", "-o", "retrain.max_steps=2",
              "-o", "adabert.hidden=16", "-o", "adabert.max_cells=3",
              "-o", "train.progress=false", "-o", "retrain.progress=false",
              "-o", "adabert.probe_epochs=5"])
    got = json.loads((tmp_path / "given" / "metrics.json").read_text())
    assert got["architecture"] == res["architecture"]
    assert not (tmp_path / "given" / "stages" / "01-search").exists()


def test_search_resumes_after_a_kill_to_the_same_weights(tiny_bert, tmp_path, monkeypatch):
    import functools

    from lmdistill.train.pipeline import Pipeline

    # keep the finished stages' checkpoints: the kill is faked from the finished run's ones
    monkeypatch.setattr(Pipeline, "__init__",
                        functools.partialmethod(Pipeline.__init__, keep_checkpoints=True))
    cfg = _search_cfg(tmp_path, tiny_bert, **{"train.max_steps": 8, "train.save_every": 2,
                                              "train.keep_checkpoints": 10})
    api.search(cfg)
    out = tmp_path / "s-sst2"
    ck = out / "stages" / "01-search" / "checkpoints"
    ref = load_file(str(ck / "step-00000008" / "model.safetensors"))
    # the kill: during the search, after step 4's checkpoint
    for c in sorted(ck.iterdir()):
        if int(c.name.split("-")[1]) > 4:
            shutil.rmtree(c)
    (out / "stages" / "01-search" / "stage.json").unlink()
    shutil.rmtree(out / "stages" / "02-retrain")
    api.search(cfg, resume=True)
    got = load_file(str(ck / "step-00000008" / "model.safetensors"))
    assert set(got) == set(ref) and "op_logits" in got
    for k in ref:
        assert torch.equal(got[k], ref[k]), k


def test_bad_input_is_one_clear_error(tiny_bert, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_main(["search", "--task", "stsb", "--teacher", str(tiny_bert), "--out",
                  str(tmp_path / "x"), "--limit", "20"])
    assert "regression" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["search", "--task", "sst2", "--out", str(tmp_path / "y")])
    assert "teacher" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["search", "--task", "sst2", "--teacher", str(tiny_bert), "--out",
                  str(tmp_path / "z"), "-o", "adabert.cost=watts"])
    assert "cost" in capsys.readouterr().err
