"""The commands on a CUDA GPU: skipped without one (CI has none), run by `make test` on a GPU
machine. Each covers a bug of the class "a tensor left on the CPU while the batch is on the
GPU" (issue 7), end to end on real SST-2 rows and a tiny real-vocabulary BERT."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lmdistill import api
from lmdistill import config as C
from lmdistill import teachers as T
from lmdistill.bench import bench
from lmdistill.compress import quantize as Q
from lmdistill.methods.kd.run import distill

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

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
    assert res["accuracy"] >= 0.0 and res["device"].startswith("cuda")


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
