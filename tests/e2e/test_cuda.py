"""The commands on a CUDA GPU: skipped without one (CI has none), run by `make test` on a GPU
machine. Each covers a bug of the class "a tensor left on the CPU while the batch is on the
GPU" (issue 7), end to end on real SST-2 rows and a tiny real-vocabulary BERT."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from lmdistill import api
from lmdistill import config as C
from lmdistill import teachers as T
from lmdistill.bench import bench
from lmdistill.compress import quantize as Q
from lmdistill.methods.kd.run import distill

# LMDISTILL_CUDA_TESTS_ON_CPU=1 runs them on the CPU (expecting "cpu" devices): a check of
# the tests themselves on a machine without a GPU
ON_CPU = os.environ.get("LMDISTILL_CUDA_TESTS_ON_CPU") == "1"
pytestmark = pytest.mark.skipif(not torch.cuda.is_available() and not ON_CPU,
                                reason="needs a CUDA GPU")
DEV = "cuda" if torch.cuda.is_available() else "cpu"

SMALL = {"data.task": "sst2", "data.limit": 128, "data.eval_limit": 64, "data.max_length": 48,
         "train.batch_size": 16, "train.epochs": 1, "train.progress": False}


@pytest.fixture(scope="module")
def gpu_teacher(tiny_bert, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-ft")
    res = api.finetune(C.build(C.FinetuneConfig, overrides={
        **SMALL, "output_dir": str(out), "model.name": str(tiny_bert), "train.lr": 1e-3}))
    return out, res


def test_finetune_on_gpu_with_bf16(gpu_teacher):
    _, res = gpu_teacher
    assert res["device"].startswith("cuda")
    want = "bf16" if torch.cuda.is_bf16_supported() else "no"
    assert res["mixed_precision"] == want  # auto


def test_evaluate_on_gpu(gpu_teacher):
    out, res = gpu_teacher
    ev = api.evaluate(str(out / "model"), "sst2", "dev", limit=64, max_length=48,
                      progress=False)
    assert ev["accuracy"] == pytest.approx(res["accuracy"])


def test_distill_cached_and_file_teachers_gold_on_gpu(gpu_teacher, tmp_path):
    """A cached HF teacher mixed with a logits-file teacher under gold weighting, plus
    hidden-state KD from a cached teacher: all tensors meet on the GPU."""
    out, _ = gpu_teacher
    from lmdistill.data.tasks import get_task

    n = len(get_task("sst2").load("train"))
    logits = np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32)
    np.save(tmp_path / "l.npy", logits)
    res = distill(C.build(C.DistillConfig, overrides={
        **SMALL, "output_dir": str(tmp_path / "s"), "teacher.name": str(out / "model"),
        "teacher.logits_file": str(tmp_path / "l.npy"), "teacher.strategy": "gold",
        "teacher.cache_dir": str(tmp_path / "cache"), "student.num_layers": 1}))
    assert res["device"].startswith("cuda")
    res = distill(C.build(C.DistillConfig, overrides={
        **SMALL, "output_dir": str(tmp_path / "h"), "teacher.name": str(out / "model"),
        "teacher.cache_dir": str(tmp_path / "cache"), "student.num_layers": 1,
        "kd.features": ["hidden"]}))
    assert res["device"].startswith("cuda") and res["teacher_devices"] == ["cache"]
    ev = api.evaluate(str(tmp_path / "h" / "model"), "sst2", "dev", limit=64, max_length=48,
                      progress=False)
    assert ev["accuracy"] == pytest.approx(res["accuracy"])  # what the run reported


def test_distill_online_teacher_and_resume_on_gpu(gpu_teacher, tmp_path):
    """Uncached (online) teacher on the GPU; a run resumed from an earlier checkpoint ends on
    the same weights as the uninterrupted one (CUDA RNG, hence dropout, restored)."""
    import shutil

    from safetensors.torch import load_file

    out, _ = gpu_teacher
    cfg = C.build(C.DistillConfig, overrides={
        **SMALL, "teacher.name": str(out / "model"), "teacher.cache": False,
        "student.num_layers": 1, "train.max_steps": 12, "train.save_every": 4,
        "train.keep_checkpoints": 5, "train.mixed_precision": "no",
        "output_dir": str(tmp_path / "a")})
    distill(cfg)
    ck = tmp_path / "a" / "checkpoints"
    ref = load_file(str(ck / "step-00000012" / "model.safetensors"))
    for name in ("step-00000008", "step-00000012"):
        shutil.rmtree(ck / name)
    res = distill(cfg, resume=True)  # retrains steps 5..12 from step 4
    assert res["steps"] == 12
    got = load_file(str(ck / "step-00000012" / "model.safetensors"))
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=1e-6, rtol=0)


def test_fingerprint_of_a_bf16_gpu_teacher(tiny_bert):
    from lmdistill.models import hub

    m = hub.load_classifier(str(tiny_bert), 2).to("cuda", torch.bfloat16)
    assert len(T.fingerprint_model(m)) == 64


def test_logits_file_teacher_with_a_gpu_index(tmp_path):
    from lmdistill.data.collate import Encoded

    np.save(tmp_path / "l.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
    enc = Encoded([[1], [2], [3]], None, [0, 1, 0], [0, 1, 2], [("a", None)] * 3, 0)
    t = T.LogitsFileTeacher(tmp_path / "l.npy", enc)
    out = t({"index": torch.tensor([2, 0], device="cuda")})
    assert out.logits.device.type == "cuda"
    assert out.logits.cpu().tolist() == [[4.0, 5.0], [0.0, 1.0]]


def test_bench_on_gpu_and_quantize_check_on_a_gpu_machine(gpu_teacher, tmp_path):
    out, _ = gpu_teacher
    res = bench({"m": str(out / "model")}, "sst2", "dev", (4,), repeats=5, n_batches=2,
                device="cuda")
    assert res["models"][0]["device"].startswith("cuda") and res["machine"]["gpu"]
    rec = Q.quantize(out / "model", tmp_path / "q", "auto", task="sst2", eval_limit=64,
                     max_length=48, force=True, progress=False, log=lambda m: None)
    saved = json.loads((tmp_path / "q" / Q.CHOICE_FILE).read_text())
    assert saved["method"] == rec["method"]


# ------------------------------------------------------------------ every method, one each
def _stage_devices(out) -> dict[str, str]:
    """{stage: device} of every trained stage of a pipeline's output folder."""
    found = {}
    for f in sorted((out / "stages").glob("*/stage.json")):
        r = json.loads(f.read_text()).get("result") or {}
        if "device" in r:
            found[f.parent.name] = r["device"]
    return found


def test_search_on_gpu(tiny_bert, tmp_path, monkeypatch):
    """Before: the search crashed at step 1 (a CPU arange times the depth logits)."""
    monkeypatch.setenv("LMDISTILL_CACHE", str(tmp_path / "cache"))
    res = api.search(C.build(C.SearchConfig, overrides={
        "output_dir": str(tmp_path / "s"), "data.task": "sst2", "teacher.name": str(tiny_bert),
        "data.limit": 96, "data.eval_limit": 48, "data.max_length": 48,
        "adabert.max_cells": 2, "adabert.hidden": 16, "adabert.probe_epochs": 5,
        "adabert.cost": "params", "train.max_steps": 4, "train.batch_size": 16,
        "train.progress": False, "retrain.max_steps": 3, "retrain.batch_size": 16,
        "retrain.progress": False}))
    assert res["device"].startswith(DEV)
    devs = _stage_devices(tmp_path / "s")
    assert devs and all(d.startswith(DEV) for d in devs.values()), devs
    probes = json.loads(next((tmp_path / "s" / "stages").glob("*-probes/stage.json"))
                        .read_text())["result"]
    assert probes["teacher_device"].startswith(DEV)


def test_metakd_on_gpu(tmp_path, monkeypatch):
    from conftest import make_tiny_bert

    monkeypatch.setenv("LMDISTILL_CACHE", str(tmp_path / "cache"))
    tiny4 = make_tiny_bert(tmp_path / "tiny4", layers=4)
    api.metakd(C.build(C.MetaKDConfig, overrides={
        "output_dir": str(tmp_path / "mk"), "teacher_base": str(tiny4),
        "student.base": str(tiny4), "student.num_layers": 2, "data.limit": 32,
        "data.eval_limit": 24, "data.max_length": 48,
        "metakd.domains": ["amazon-books", "amazon-dvd"], "metakd.targets": ["amazon-dvd"],
        "metakd.stage1_epochs": 1, "train.epochs": 1, "teacher_train.epochs": 1,
        "train.progress": False, "teacher_train.progress": False, "train.batch_size": 16,
        "teacher_train.batch_size": 16}))
    devs = _stage_devices(tmp_path / "mk")
    assert any("metakd" in k for k in devs) and all(d.startswith(DEV) for d in devs.values())


def test_l2a_on_gpu(tiny_bert, tmp_path):
    from conftest import make_tiny_mlm

    mlm = make_tiny_mlm(tiny_bert, tmp_path / "mlm", seed=7)
    res = api.l2a(C.build(C.L2AConfig, overrides={
        "output_dir": str(tmp_path / "l2a"), "data.task": "rt", "data.limit": 40,
        "data.eval_limit": 40, "data.max_length": 48, "l2a.source_task": "sst2",
        "l2a.source_limit": 40, "l2a.mlm": str(mlm), "l2a.teacher_base": str(tiny_bert),
        "l2a.rounds": 1, "l2a.candidates": 8, "student.base": str(tiny_bert),
        "student.num_layers": 1, "train.max_steps": 3, "train.batch_size": 8,
        "train.progress": False, "teacher_train.max_steps": 3, "teacher_train.batch_size": 8,
        "teacher_train.progress": False, "teacher.cache_dir": str(tmp_path / "tc")}))
    devs = _stage_devices(tmp_path / "l2a")
    assert len(devs) >= 3 and all(d.startswith(DEV) for d in devs.values()), devs
    ev = api.evaluate(res["model_dir"], "rt", "dev", limit=40, max_length=48, progress=False)
    assert ev["accuracy"] == pytest.approx(res["final"]["accuracy"])


def test_mlm_distill_online_and_cached_teachers_on_gpu(tiny_bert, tmp_path):
    from conftest import make_tiny_mlm

    mlm = make_tiny_mlm(tiny_bert, tmp_path / "mlm", seed=3)
    common = {"data.task": "mlm:wikitext2", "data.mlm_block_size": 32,
              "data.mlm_max_blocks": 120, "data.mlm_heldout": 0.15, "train.batch_size": 16,
              "train.progress": False, "teacher.name": str(mlm), "student.num_layers": 1,
              "train.max_steps": 3, "teacher.cache_dir": str(tmp_path / "cache")}
    online = distill(C.build(C.DistillConfig, overrides={
        **common, "output_dir": str(tmp_path / "o")}))
    cached = distill(C.build(C.DistillConfig, overrides={
        **common, "output_dir": str(tmp_path / "c"), "data.mlm_static": True}))
    for res in (online, cached):
        assert res["device"].startswith(DEV)
        assert all(d.startswith(DEV) for d in res["teacher_devices"]), res["teacher_devices"]


def test_cbert_augment_on_gpu(tiny_bert, tmp_path):
    from conftest import make_tiny_mlm

    from lmdistill.augment.cbert import CBERT

    mlm = make_tiny_mlm(tiny_bert, tmp_path / "mlm", seed=3)
    aug = CBERT(str(mlm), p=0.3, n_aug=2, topk=5)
    assert aug.device.type == DEV
    texts = ["a gripping and moving film", "the plot is thin and the acting flat"]
    out = aug(texts, seed=1)
    assert len(out) == 4 and all(t != texts[i] for i, t in out)
    on_cpu = CBERT(str(mlm), p=0.3, n_aug=2, topk=5, device="cpu")(texts, seed=1)
    assert sum(a == b for a, b in zip(out, on_cpu)) >= 3  # sampling is on the CPU generator


def test_wsd_on_gpu(lexical_cache, monkeypatch, data_dir, tiny_bert):
    monkeypatch.setenv("LMDISTILL_CACHE", str(lexical_cache))
    from lmdistill.models import hub

    m = hub.load_classifier(str(tiny_bert), 2)
    path = lexical_cache.parent / "wsd-gpu-model"
    m.save_pretrained(path)
    hub.load_tokenizer(str(tiny_bert)).save_pretrained(path)
    res = api.evaluate_wsd(str(path), ["SE07"], data_dir, max_length=32, batch_size=256)
    r = res["sets"]["SE07"]
    assert res["device"].startswith(DEV)
    assert r["model"]["total"] == 455 and r["model"]["answered"] > 400
