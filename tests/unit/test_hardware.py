"""Machine description (CPU ISA, threads), mixed-precision settings and device placement."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import torch

from lmdistill import config as C
from lmdistill import hardware as H
from lmdistill import teachers as T
from lmdistill.errors import ConfigError
from lmdistill.train.loop import make_accelerator, resolve_mixed_precision

AVX2_ONLY = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2
processor\t: 1
model name\t: AMD EPYC 7B12
flags\t\t: fpu vme sse sse2 avx2
"""


def test_parse_cpuinfo_avx2_only_machine():
    info = H.parse_cpuinfo(AVX2_ONLY)
    assert info == {"model": "AMD EPYC 7B12", "flags": ["avx2", "fma"]}


def test_parse_cpuinfo_arm():
    text = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes asimddp sve\nCPU part\t: 0xd40\n"
    assert H.parse_cpuinfo(text)["flags"] == ["asimd", "asimddp", "sve"]


@pytest.mark.skipif(shutil.which("lscpu") is None, reason="needs lscpu")
def test_cpu_info_matches_lscpu_on_this_machine():
    """Read independently through lscpu: every INT8-relevant flag agrees with cpu_info()."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = set(fields.get("Flags", "").split())
    info = H.cpu_info()
    for flag in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16"):
        assert (flag in info["flags"]) == (flag in flags), flag
    assert info["avx2"] == ("avx2" in flags)
    assert info["vnni"] == bool({"avx512_vnni", "avx_vnni"} & flags)
    assert info["amx"] == bool({"amx_int8", "amx_tile"} & flags)
    assert info["model"] == fields["Model name"].strip()
    assert info["cores"] >= 1


def test_machine_info_and_line():
    m = H.machine_info(threads=3)
    assert m["threads"] == 3 and m["torch"] == torch.__version__
    assert (m["gpu"] is None) == (not torch.cuda.is_available())
    line = H.machine_line(m)
    assert "3 threads" in line and f"torch {torch.__version__}" in line
    if H.cpu_info()["avx2"]:
        assert "AVX2" in line
    # an AVX2-only machine says so; no VNNI/AMX is claimed
    fake = {"cpu": {"model": "AMD EPYC 7B12", "arch": "x86_64", "isa": ["AVX2", "FMA"],
                    "cores": 2}, "threads": 2, "torch": "2.13.0", "gpu": None}
    assert H.machine_line(fake) == ("AMD EPYC 7B12 (x86_64; AVX2), 2 cores, 2 threads, "
                                    "torch 2.13.0")


# ------------------------------------------------------------------ mixed precision
def test_mixed_precision_parses_and_reaches_accelerate():
    cfg = C.build(C.FinetuneConfig, overrides=["train.mixed_precision=bf16"])
    assert cfg.train.mixed_precision == "bf16"
    assert C.build(C.DistillConfig).train.mixed_precision == "auto"
    with pytest.raises(ConfigError, match="mixed_precision"):
        C.build(C.FinetuneConfig, overrides=["train.mixed_precision=fp8"])
    acc = make_accelerator(cfg.train.mixed_precision)
    assert acc.mixed_precision == "bf16"
    # the state is process-wide: a later run with another precision gets its own
    assert make_accelerator("no").mixed_precision == "no"
    assert make_accelerator("bf16").mixed_precision == "bf16"
    assert make_accelerator("no").mixed_precision == "no"


def test_mixed_precision_auto_and_fp16_rules():
    assert resolve_mixed_precision("auto", cpu=True) == "no"  # the CPU stays fp32
    assert resolve_mixed_precision("bf16", cpu=True) == "bf16"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        resolve_mixed_precision("fp16", cpu=True)
    if torch.cuda.is_available():
        want = "bf16" if torch.cuda.is_bf16_supported() else "no"
        assert resolve_mixed_precision("auto", cpu=False) == want


def test_bf16_autocast_forward_under_accelerate():
    """What Accelerate does with bf16 on a model: matmuls in bf16, weights kept fp32."""
    torch.manual_seed(0)
    acc = make_accelerator("bf16")
    lin = acc.prepare(torch.nn.Linear(64, 4))
    x = torch.randn(2, 64, device=acc.device)
    y = lin(x)  # accelerate hands the output back as fp32, computed in bf16
    exact = torch.nn.functional.linear(x, lin.weight, lin.bias)
    assert acc.unwrap_model(lin).weight.dtype == torch.float32
    assert torch.equal(y, y.to(torch.bfloat16).float())  # every value is a bf16 number
    assert not torch.equal(y, exact)
    make_accelerator("no")


# ------------------------------------------------------------------ devices
def test_teacher_weights_stay_on_the_logits_device():
    """Every weighting strategy answers on the device of the logits (a GPU in real runs: meta
    here), also with labels given on another device: before, uniform/fixed/gold built CPU
    tensors and gold gathered CPU logits with CUDA labels."""
    logits = torch.randn(2, 3, 4).to("meta")
    labels = torch.tensor([0, 1, 2])
    for s in ("uniform", "confidence", "entropy", "gold", "fixed"):
        w = T.teacher_weights(logits, s, labels, fixed=[1.0, 2.0])
        assert w.device.type == "meta" and w.shape == (3, 2), s
    reg = torch.randn(2, 3, 1).to("meta")
    assert T.teacher_weights(reg, "gold", labels.float(), regression=True).device.type == "meta"
    assert T.teacher_weights(reg, "uniform", regression=True).device.type == "meta"


class _CpuTeacher(T.TeacherSignal):
    """A cached/file-like teacher: answers with CPU tensors whatever the batch's device."""

    def __init__(self, logits):
        self.logits = logits

    def __call__(self, batch):
        return T.TeacherOut(logits=self.logits)


def test_multi_teacher_mixes_cpu_answers_on_the_batch_device():
    teachers = [_CpuTeacher(torch.randn(3, 2)), _CpuTeacher(torch.randn(3, 2))]
    batch = {"input_ids": torch.zeros(3, 4, dtype=torch.long).to("meta"),
             "labels": torch.tensor([0, 1, 0]).to("meta")}
    out = T.MultiTeacher(teachers, "gold")(batch)
    assert out.logits.device.type == "meta" and out.weights.device.type == "meta"
    assert out.logits.shape == (2, 3, 2)


def test_fingerprint_of_a_bf16_teacher():
    torch.manual_seed(0)
    m = torch.nn.Linear(4, 3)
    fp32 = T.fingerprint_model(m)
    bf16 = T.fingerprint_model(m.to(torch.bfloat16))
    assert len(bf16) == 64 and bf16 != fp32  # other bytes, other key; and no numpy failure
    assert T.fingerprint_model(m) == bf16


def test_to_device_moves_every_feature():
    t = T.TeacherOut(logits=torch.zeros(1, 2), hidden={1: torch.zeros(1, 2, 3)},
                     weights=torch.ones(1, 2))
    T.to_device(t, torch.device("meta"))
    assert {x.device.type for x in (t.logits, t.hidden[1], t.weights)} == {"meta"}


def test_checkpoint_rng_state_covers_cuda_when_present():
    from lmdistill.train.checkpoint import rng_state

    tensors, _ = rng_state()
    n_cuda = sum(k.startswith("cuda_") for k in tensors)
    assert n_cuda == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
