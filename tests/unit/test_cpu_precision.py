"""train.mixed_precision=auto on a CPU: the bf16-or-fp32 rule, the probe that times real
training steps without leaving a trace, and what a run under auto records and trains."""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lmdistill import api
from lmdistill import config as C
from lmdistill import hardware as H
from lmdistill.train import loop, precision


def _toy():
    """Toy, cfg, toy_data of the loop's unit tests (loaded by path, whatever pytest's import
    mode)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("test_extension_points.py")
    spec = importlib.util.spec_from_file_location("_lmdistill_loop_helpers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Toy, mod.cfg, mod.toy_data


# ------------------------------------------------------------------ the rule
@pytest.mark.parametrize("fp32_s, bf16_s, want", [
    (1.3, 1.0, "bf16"),      # exactly 1.3x: bf16
    (2.6, 2.0, "bf16"),
    (10.0, 1.0, "bf16"),
    (1.29, 1.0, "no"),       # just under
    (1.0, 1.0, "no"),
    (1.0, 2.0, "no"),        # bf16 slower (CPUs without bf16 arithmetic)
    (0.0, 1.0, "no"),        # nonsense timings never give bf16
    (1.0, 0.0, "no"),
    (float("nan"), 1.0, "no"),
    (float("inf"), 1.0, "no"),
    (None, 1.0, "no"),       # a failed probe
    (0.04, 0.01, "no"),      # 4x, but an fp32 step under 50 ms: not worth it, nor measurable
    (0.05, 0.01, "bf16"),
])
def test_bf16_rule_from_given_timings(fp32_s, bf16_s, want):
    assert loop.choose_cpu_precision(fp32_s, bf16_s) == want


def test_bf16_rule_threshold_is_the_module_setting(monkeypatch):
    assert precision.BF16_MIN_SPEEDUP == 1.3 and precision.BF16_MIN_STEP_S == 0.05
    assert loop.choose_cpu_precision(1.5, 1.0, min_speedup=1.6) == "no"
    assert loop.choose_cpu_precision(1.5, 1.0, min_step_s=2.0) == "no"
    monkeypatch.setattr(precision, "BF16_MIN_SPEEDUP", 1.4)
    assert loop.choose_cpu_precision(1.35, 1.0) == "no"
    assert loop.choose_cpu_precision(1.45, 1.0) == "bf16"
    monkeypatch.setattr(precision, "BF16_MIN_STEP_S", 0.0)
    assert loop.choose_cpu_precision(0.002, 0.001) == "bf16"


def test_cpu_bf16_support_from_flags():
    assert H.cpu_has_bf16({"flags": ["avx2", "avx512f", "avx512_bf16"]})  # AMD Zen 4
    assert H.cpu_has_bf16({"flags": ["avx512f", "amx_tile", "amx_bf16"]})
    assert not H.cpu_has_bf16({"flags": ["avx2", "avx512f", "avx512_vnni", "amx_int8"]})
    assert not H.cpu_has_bf16({"flags": []})
    info = H.cpu_info()
    assert info["bf16"] == H.cpu_has_bf16()


@pytest.mark.skipif(shutil.which("lscpu") is None, reason="needs lscpu")
def test_cpu_bf16_support_matches_lscpu():
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    flags = set(next((ln.split(":", 1)[1] for ln in out.splitlines()
                      if ln.startswith("Flags")), "").split())
    assert H.cpu_has_bf16() == bool({"avx512_bf16", "amx_bf16"} & flags)


# ------------------------------------------------------------------ the probe
def _objective(tiny_bert):
    from lmdistill.methods.finetune import SupervisedObjective
    from lmdistill.models import hub

    torch.manual_seed(1)
    model = hub.load_classifier(str(tiny_bert), 2)
    return SupervisedObjective(model, False, hub.load_tokenizer(str(tiny_bert)))


def _batch(tiny_bert, data_dir, n=8):
    from lmdistill.data.collate import collate, encode
    from lmdistill.data.tasks import get_task
    from lmdistill.models import hub

    rows = get_task("sst2", data_dir=str(data_dir)).load("train", limit=n, seed=0)
    enc = encode(rows, hub.load_tokenizer(str(tiny_bert)), 48)
    return collate(enc, list(range(n)))


def _snapshot(obj):
    return ({k: v.clone() for k, v in obj.state_dict().items()},
            {n: None if p.grad is None else p.grad.clone() for n, p in obj.named_parameters()},
            {n: m.training for n, m in obj.named_modules()})


def _rng_draws():
    return torch.rand(5), random.random(), np.random.rand()


def test_preserved_state_undoes_training_steps(tiny_bert):
    obj = _objective(tiny_bert)
    w = next(obj.parameters())
    before = w.detach().clone()
    with loop.preserved_state(obj):
        opt = torch.optim.SGD(obj.parameters(), lr=1.0)
        w.sum().backward()
        opt.step()
        torch.rand(3)
        assert not torch.equal(w, before)  # it did change inside
    assert torch.equal(w, before) and w.grad is None


def test_probe_leaves_weights_grads_modes_and_rng_untouched(tiny_bert, data_dir):
    obj = _objective(tiny_bert)
    obj.train()
    obj.model.bert.embeddings.eval()  # a mixed mode must come back as it was
    p0 = next(obj.parameters())
    p0.grad = torch.full_like(p0, 0.5)  # a pending gradient too
    batch = _batch(tiny_bert, data_dir)
    weights, grads, modes = _snapshot(obj)
    ids = {n: id(p) for n, p in obj.named_parameters()}

    torch.manual_seed(7), random.seed(7), np.random.seed(7)
    expected = _rng_draws()
    torch.manual_seed(7), random.seed(7), np.random.seed(7)
    rec = loop.probe_cpu_precision(obj, batch, lr=1e-2, min_pairs=2, max_pairs=2)
    got = _rng_draws()

    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]
    w2, g2, m2 = _snapshot(obj)
    assert w2.keys() == weights.keys()
    assert all(torch.equal(w2[k], weights[k]) for k in weights)  # bit for bit
    assert all((g2[k] is None and grads[k] is None) or torch.equal(g2[k], grads[k])
               for k in grads)
    assert m2 == modes
    assert {n: id(p) for n, p in obj.named_parameters()} == ids  # the same tensors
    # what it measured, and the choice is the rule's on those timings
    assert rec["pairs"] == 2 and rec["batch_shape"] == list(batch["input_ids"].shape)
    assert rec["fp32_step_s"] > 0 and rec["bf16_step_s"] > 0
    assert math.isclose(rec["speedup"], rec["fp32_step_s"] / rec["bf16_step_s"], rel_tol=1e-2)
    assert rec["choice"] == loop.choose_cpu_precision(rec["fp32_step_s"], rec["bf16_step_s"])


def test_probe_steps_really_train_in_both_precisions(tiny_bert, data_dir, monkeypatch):
    """The timed steps are real training steps: the loss is computed under bf16 autocast in
    one half and fp32 in the other, and the optimizer moves the weights (inside the probe)."""
    obj = _objective(tiny_bert)
    batch = _batch(tiny_bert, data_dir)
    seen = []
    fwd = type(obj).forward

    def spy(self, b):
        out = fwd(self, b)
        w = next(self.parameters())
        seen.append((torch.is_autocast_enabled("cpu"), float(w.detach().sum())))
        return out

    monkeypatch.setattr(type(obj), "forward", spy)
    loop.probe_cpu_precision(obj, batch, min_pairs=1, max_pairs=1)
    assert [s[0] for s in seen] == [False, True, False, True]  # warm-ups, then one pair
    assert len({s[1] for s in seen}) == 4  # every step changed the weights


# ------------------------------------------------------------------ runs under auto
def _cfg(model, out, mp, **over):
    base = {"output_dir": str(out), "model.name": str(model), "data.task": "sst2",
            "data.limit": 96, "data.eval_limit": 64, "data.max_length": 48,
            "train.batch_size": 16, "train.epochs": 1, "train.lr": 1e-3,
            "train.progress": False, "train.num_threads": 1,
            "train.mixed_precision": mp}
    base.update(over)
    return C.build(C.FinetuneConfig, overrides=base)


def _weights(run):
    return load_file(str(run / "model" / "model.safetensors"))


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_auto_choosing_fp32_trains_bit_identical_to_no(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setattr(H, "cpu_has_bf16", lambda info=None: True)  # probe on any CPU
    monkeypatch.setattr(precision, "BF16_MIN_SPEEDUP", float("inf"))  # ... and it says fp32
    auto = api.finetune(_cfg(tiny_bert, tmp_path / "auto", "auto"))
    ref = api.finetune(_cfg(tiny_bert, tmp_path / "no", "no"))
    rec = auto["precision"]
    assert rec["choice"] == "no" and auto["mixed_precision"] == "no"
    assert rec["fp32_step_s"] > 0 and rec["bf16_step_s"] > 0 and rec["pairs"] >= 2
    assert rec["batch_shape"][0] == 16 and rec["machine"]  # a real full batch of the run
    assert "precision" not in ref
    assert _same(_weights(tmp_path / "auto"), _weights(tmp_path / "no"))
    # the log has the decision first, then the same training records
    log = [json.loads(x) for x in (tmp_path / "auto" / "metrics.jsonl").read_text().split("\n")
           if x]
    assert log[0]["type"] == "precision" and log[0]["fp32_step_s"] == rec["fp32_step_s"]
    ref_log = [json.loads(x) for x in (tmp_path / "no" / "metrics.jsonl").read_text()
               .split("\n") if x]
    assert [r["loss"] for r in log if r["type"] == "train"] == \
        [r["loss"] for r in ref_log if r["type"] == "train"]


def test_auto_choosing_bf16_trains_like_explicit_bf16(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setattr(H, "cpu_has_bf16", lambda info=None: True)
    monkeypatch.setattr(precision, "BF16_MIN_SPEEDUP", 0.0)  # any timing says bf16
    monkeypatch.setattr(precision, "BF16_MIN_STEP_S", 0.0)
    auto = api.finetune(_cfg(tiny_bert, tmp_path / "auto", "auto"))
    bf16 = api.finetune(_cfg(tiny_bert, tmp_path / "bf16", "bf16"))
    fp32 = api.finetune(_cfg(tiny_bert, tmp_path / "no", "no"))
    assert auto["precision"]["choice"] == "bf16" and auto["mixed_precision"] == "bf16"
    assert bf16["mixed_precision"] == "bf16" and fp32["mixed_precision"] == "no"
    assert _same(_weights(tmp_path / "auto"), _weights(tmp_path / "bf16"))
    assert not _same(_weights(tmp_path / "auto"), _weights(tmp_path / "no"))


def test_explicit_settings_win_and_no_bf16_cpu_is_not_probed(tiny_bert, tmp_path,
                                                              monkeypatch):
    def no_probe(*a, **k):
        raise AssertionError("probed")

    monkeypatch.setattr(loop, "probe_cpu_precision", no_probe)
    monkeypatch.setattr(H, "cpu_has_bf16", lambda info=None: True)
    for mp in ("no", "bf16"):
        res = api.finetune(_cfg(tiny_bert, tmp_path / mp, mp, **{"train.max_steps": 2}))
        assert res["mixed_precision"] == mp and "precision" not in res
    monkeypatch.setattr(H, "cpu_has_bf16", lambda info=None: False)
    res = api.finetune(_cfg(tiny_bert, tmp_path / "auto", "auto", **{"train.max_steps": 2}))
    assert res["mixed_precision"] == "no"
    assert "AVX-512-BF16" in res["precision"]["reason"]


def test_resumed_run_keeps_the_choice_it_started_with(tmp_path, monkeypatch):
    """The choice is part of the checkpoint: a resumed run trains on in the precision it
    started with and does not probe again (a new timing could differ)."""
    Toy, cfg, toy_data = _toy()

    from lmdistill.train.loop import Trainer

    monkeypatch.setattr(H, "cpu_has_bf16", lambda info=None: True)
    monkeypatch.setattr(precision, "BF16_MIN_SPEEDUP", 0.0)  # this start chooses bf16
    monkeypatch.setattr(precision, "BF16_MIN_STEP_S", 0.0)
    first = Trainer(Toy(), toy_data(), cfg(max_steps=2, save_every=1), tmp_path).fit()
    assert first["mixed_precision"] == "bf16" and first["precision"]["choice"] == "bf16"

    def no_probe(*a, **k):
        raise AssertionError("probed again")

    monkeypatch.setattr(loop, "probe_cpu_precision", no_probe)
    monkeypatch.setattr(precision, "BF16_MIN_SPEEDUP", float("inf"))
    res = Trainer(Toy(), toy_data(), cfg(max_steps=4, save_every=1), tmp_path,
                  resume=True).fit()
    assert res["step"] == 4 and res["mixed_precision"] == "bf16"
    assert res["precision"] == first["precision"]
    loop.make_accelerator("no")


def test_toy_model_steps_stay_fp32_under_auto(tmp_path):
    """A millisecond step is timing noise on a busy machine (it measured 0.7x-3.6x): auto
    keeps such runs in fp32, so two runs of the same toy config train alike."""
    Toy, cfg, toy_data = _toy()

    from lmdistill.train.loop import Trainer

    res = Trainer(Toy(), toy_data(), cfg(max_steps=2), tmp_path).fit()
    assert res["mixed_precision"] == "no"
    if H.cpu_has_bf16():
        assert res["precision"]["fp32_step_s"] < loop.BF16_MIN_STEP_S
        assert "too short" in res["precision"]["reason"]


def test_distill_under_auto_probes_the_kd_objective(tiny_bert, tmp_path, monkeypatch):
    """The probe times the KD objective itself (student and teacher signal), not a fallback:
    forced to bf16, a distillation runs and records its timings."""
    monkeypatch.setenv("LMDISTILL_CACHE", str(tmp_path / "cache"))
    api.finetune(_cfg(tiny_bert, tmp_path / "teacher", "no", **{"train.max_steps": 3}))
    monkeypatch.setattr(H, "cpu_has_bf16", lambda info=None: True)
    monkeypatch.setattr(precision, "BF16_MIN_SPEEDUP", 0.0)
    monkeypatch.setattr(precision, "BF16_MIN_STEP_S", 0.0)
    cfg = C.build(C.DistillConfig, overrides={
        "output_dir": str(tmp_path / "student"), "teacher.name": str(tmp_path / "teacher/model"),
        "data.task": "sst2", "data.limit": 64, "data.eval_limit": 32, "data.max_length": 48,
        "student.num_layers": 1, "train.batch_size": 16, "train.max_steps": 2,
        "train.progress": False, "train.num_threads": 1, "kd.features": ["hidden"]})
    res = api.distill(cfg)
    rec = res["precision"]
    assert rec["choice"] == "bf16" and res["mixed_precision"] == "bf16", rec
    assert rec["fp32_step_s"] > 0 and rec["bf16_step_s"] > 0 and "failed" not in rec["reason"]
    loop.make_accelerator("no")


def test_probe_batch_is_where_the_tokens_are(tmp_path):
    """On a set of mostly short rows and a few long ones, the probe times a long batch (half
    the tokens are in batches up to it), not the median batch, which is short."""
    from lmdistill.data.collate import Encoded
    from lmdistill.train.loop import Trainer

    Toy, cfg, _ = _toy()
    ids = [[5] * 3] * 88 + [[7] * 40] * 32
    enc = Encoded(ids, None, [0] * len(ids), list(range(len(ids))), [("t", None)] * len(ids), 0)
    tr = Trainer(Toy(), enc, cfg(), tmp_path)
    batch = tr._probe_batch()
    assert tuple(batch["input_ids"].shape) == (8, 40)
    assert int(batch["attention_mask"].sum()) == 8 * 40  # real rows, no padding
