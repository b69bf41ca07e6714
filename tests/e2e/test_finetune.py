"""End to end: fine-tune / evaluate on real SST-2 rows with a tiny real-vocabulary BERT, a real
kill-and-resume, two processes under torchrun, and the bad-input messages."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lmdistill import api
from lmdistill import config as C
from lmdistill.data.tasks import get_task
from lmdistill.errors import CheckpointError, ConfigError, TrainingDiverged

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def cfg_for(model: Path, out: Path, **over) -> C.FinetuneConfig:
    base = {"output_dir": str(out), "model.name": str(model), "data.task": "sst2",
            "data.limit": 256, "data.eval_limit": 128, "data.max_length": 48,
            "train.batch_size": 16, "train.epochs": 2, "train.lr": 1e-3,
            "train.eval_every": 8, "train.progress": False, "train.num_threads": 1}
    base.update(over)
    return C.build(C.FinetuneConfig, overrides=base)


def cli(*args, check=True, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "lmdistill", *args], env=ENV, text=True,
                       capture_output=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def test_finetune_learns_and_saves_everything(tiny_bert, tmp_path):
    res = api.finetune(cfg_for(tiny_bert, tmp_path / "run"))
    run = tmp_path / "run"
    for f in ("config.yaml", "metrics.json", "metrics.jsonl", "model/config.json",
              "model/model.safetensors", "model/tokenizer.json"):
        assert (run / f).exists(), f
    assert res["steps"] == 2 * 16  # 256 examples / 16 per batch, 2 epochs
    assert res["examples_seen"] == 2 * 256
    log = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train_loss = [r["loss"] for r in log if r["type"] == "train"]
    assert train_loss[-1] < train_loss[0]
    evals = [r for r in log if r["type"] == "eval"]
    assert [r["step"] for r in evals] == [8, 16, 24, 32]
    assert res["accuracy"] == max(r["accuracy"] for r in evals)
    # the saved best model re-evaluates to exactly the logged best metric
    ev = api.evaluate(str(run / "model"), "sst2", "dev", limit=128, max_length=48)
    assert ev["accuracy"] == pytest.approx(res["accuracy"], abs=1e-9)
    saved = C.build(C.FinetuneConfig, run / "config.yaml")
    assert saved.train.lr == 1e-3 and saved.data.limit == 256


def test_deterministic_with_seed(tiny_bert, tmp_path):
    a = api.finetune(cfg_for(tiny_bert, tmp_path / "a", **{"train.epochs": 1}))
    b = api.finetune(cfg_for(tiny_bert, tmp_path / "b", **{"train.epochs": 1}))
    wa = load_file(str(tmp_path / "a/model/model.safetensors"))
    wb = load_file(str(tmp_path / "b/model/model.safetensors"))
    assert a["accuracy"] == b["accuracy"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_regression_task_stsb(tiny_bert, tmp_path):
    api.finetune(cfg_for(tiny_bert, tmp_path / "r", **{"data.task": "stsb",
                                                          "train.epochs": 1}))
    ev = api.evaluate(str(tmp_path / "r" / "model"), "stsb", "dev", limit=128, max_length=48,
                      progress=False, batch_size=128)  # one batch, padded as below
    from scipy.stats import pearsonr, spearmanr

    from lmdistill.data.collate import collate, encode
    from lmdistill.models import hub

    tok = hub.load_tokenizer(str(tmp_path / "r" / "model"))
    enc = encode(get_task("stsb").load("dev", limit=128), tok, 48)
    m = hub.load_classifier(str(tmp_path / "r" / "model")).eval()
    b = collate(enc, list(range(len(enc))), with_labels=False)
    with torch.no_grad():
        pred = m(**{k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")
                    if k in b}).logits.reshape(-1).numpy()
    assert ev["pearson"] == pytest.approx(pearsonr(pred, enc.labels)[0], abs=1e-5)
    assert ev["spearman"] == pytest.approx(spearmanr(pred, enc.labels)[0], abs=1e-5)


def _kill_when(proc, pattern_dir: Path, name: str, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if (pattern_dir / name).exists():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    proc.kill()
    return False


def test_kill_and_resume_matches_uninterrupted(tiny_bert, tmp_path):
    args = ["finetune", "--task", "sst2", "--model", str(tiny_bert), "--limit", "512",
            "--eval-limit", "128", "--epochs", "2", "--batch-size", "8", "--lr", "1e-3",
            "-o", "train.eval_every=16", "-o", "train.save_every=4", "-o", "train.progress=false",
            "-o", "data.max_length=48", "-o", "train.num_threads=1"]
    ref = tmp_path / "ref"
    cli(*args, "--out", str(ref))
    run = tmp_path / "killed"
    p = subprocess.Popen([sys.executable, "-m", "lmdistill", *args, "--out", str(run)],
                         env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _kill_when(p, run / "checkpoints", "step-00000040"), "run finished before the kill"
    assert not (run / "metrics.json").exists()
    # a changed config refuses to resume, in one line
    bad = cli(*args, "--out", str(run), "--resume", "-o", "train.lr=0.5", check=False)
    assert bad.returncode == 2 and "config changed" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    out = cli(*args, "--out", str(run), "--resume")
    assert "resumed from" in out.stdout + out.stderr
    a = json.loads((ref / "metrics.json").read_text())
    b = json.loads((run / "metrics.json").read_text())
    for k in ("accuracy", "best_step", "steps", "examples_seen"):
        assert a[k] == b[k], k
    wa = load_file(str(ref / "model/model.safetensors"))
    wb = load_file(str(run / "model/model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # the log holds each step once
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["type"] == "eval"]
    assert steps == sorted(set(steps))


def test_corrupt_checkpoint_falls_back(tiny_bert, tmp_path):
    out = tmp_path / "c"
    cfg = cfg_for(tiny_bert, out, **{"train.max_steps": 12, "train.save_every": 4,
                                      "train.eval_every": None, "train.keep_checkpoints": 3})
    api.finetune(cfg)
    ckpts = sorted((out / "checkpoints").iterdir())
    assert [c.name for c in ckpts] == ["step-00000004", "step-00000008", "step-00000012"]
    # corrupt the newest: flip bytes in its weights
    f = ckpts[-1] / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-100:] = bytes(100)
    f.write_bytes(data)
    shutil.rmtree(ckpts[-2])  # and the one before is gone entirely
    warnings = []
    from lmdistill.train import checkpoint as ck

    assert ck.latest_good(out / "checkpoints", warn=warnings.append).name == "step-00000004"
    assert "corrupt" in warnings[0]
    res = api.finetune(cfg, resume=True)  # retrains steps 5..12 from step 4
    assert res["steps"] == 12
    for c in (out / "checkpoints").iterdir():
        data = bytearray((c / "model.safetensors").read_bytes())
        data[-100:] = bytes(100)
        (c / "model.safetensors").write_bytes(data)
    with pytest.raises(CheckpointError, match="all .* corrupt"):
        api.finetune(cfg, resume=True)


def test_nan_loss_stops_with_step_and_checkpoint(tiny_bert, tmp_path):
    cfg = cfg_for(tiny_bert, tmp_path / "n", **{"train.lr": 1e9, "train.max_grad_norm": None,
                                                 "train.save_every": 1, "train.eval_every": None,
                                                 "train.warmup_ratio": 0.0,
                                                 "train.schedule": "constant"})
    with pytest.raises(TrainingDiverged, match=r"at step \d+.*Last good checkpoint: .*step-"):
        api.finetune(cfg)


def test_existing_run_needs_resume(tiny_bert, tmp_path):
    cfg = cfg_for(tiny_bert, tmp_path / "e", **{"train.max_steps": 2, "train.save_every": 1})
    api.finetune(cfg)
    with pytest.raises(ConfigError, match="--resume"):
        api.finetune(cfg)


@pytest.mark.parametrize("args,needle", [
    (["--task", "sst3"], "unknown task"),
    (["--task", "sst2", "--data-dir", "/nonexistent/data"], "does not exist"),
    (["--task", "sst2", "--model", "/nonexistent/model"], "does not exist"),
    (["--task", "sst2", "-o", "train.lr=fast"], "train.lr"),
    (["--task", "sst2", "-o", "train.nosuch=1"], "train.nosuch"),
])
def test_bad_input_is_one_line(args, needle, tmp_path, tiny_bert):
    base = ["finetune", "--out", str(tmp_path / "x"), "--limit", "8"]
    if "--model" not in args:
        base += ["--model", str(tiny_bert)]
    p = cli(*base, *args, check=False)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert "Traceback" not in p.stderr


def test_generic_file_bad_label_and_missing_column(tmp_path, tiny_bert):
    f = tmp_path / "d.csv"
    f.write_text("text,label\ngood movie,pos\nbad movie,neg\nNA,pos\n")
    dev = tmp_path / "dev.csv"
    dev.write_text("text,label\nfine,pos\nawful,maybe\n")
    p = cli("finetune", "--task", str(f), "--model", str(tiny_bert), "--out",
            str(tmp_path / "g"), "-o", "data.text_a=text", "-o", f"data.dev_path={dev}",
            check=False)
    assert p.returncode == 2 and "maybe" in p.stderr and "Traceback" not in p.stderr
    p = cli("finetune", "--task", str(f), "--model", str(tiny_bert), "--out",
            str(tmp_path / "h"), "-o", "data.text_a=sentence", check=False)
    assert p.returncode == 2 and "sentence" in p.stderr and "Traceback" not in p.stderr


def test_two_processes_split_the_data(tiny_bert, tmp_path):
    """torchrun --nproc_per_node 2: two gloo ranks share each epoch (every example once) and
    evaluation is gathered across ranks. Two unsharded copies would report world_size 1 and
    twice the steps."""
    out = tmp_path / "ddp"
    args = ["-m", "lmdistill", "finetune", "--task", "sst2", "--model", str(tiny_bert),
            "--limit", "200", "--eval-limit", "100", "--epochs", "1", "--batch-size", "16",
            "--out", str(out), "-o", "train.progress=false", "-o", "data.max_length=48",
            "-o", "train.eval_every=4"]
    torchrun = Path(sys.executable).parent / "torchrun"
    p = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29531", *args],
                       env=ENV, text=True, capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((out / "metrics.json").read_text())
    assert res["world_size"] == 2
    assert res["examples_seen"] == 200          # each example once across the two ranks
    assert res["steps"] == 7                    # 13 batches of <=16 split over 2 ranks
    ev = api.evaluate(str(out / "model"), "sst2", "dev", limit=100, max_length=48)
    assert ev["accuracy"] == pytest.approx(res["accuracy"], abs=1e-9)


def test_gradient_accumulation_counts_optimizer_steps(tiny_bert, tmp_path):
    res = api.finetune(cfg_for(tiny_bert, tmp_path / "acc", **{
        "train.batch_size": 8, "train.grad_accum": 2, "train.epochs": 1,
        "train.eval_every": None}))
    assert res["steps"] == 16 and res["examples_seen"] == 256  # 32 micro-batches / 2


def test_early_stopping_stops_when_metric_stalls(tiny_bert, tmp_path):
    # lr 0: the metric cannot improve, so patience 1 stops at the second evaluation
    res = api.finetune(cfg_for(tiny_bert, tmp_path / "es", **{
        "train.lr": 0.0, "train.eval_every": 2, "train.early_stopping_patience": 1}))
    assert res["steps"] == 4 and res["best_step"] == 2
