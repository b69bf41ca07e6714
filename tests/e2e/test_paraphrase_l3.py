"""End to end: the ``paraphrase-minilm-l3`` alias from the command line. A conversion killed
(SIGKILL) just before it renames its folder into place leaves no model; the next command
converts again, clears the dead one's leftovers, and trains the encoder as a masked LM on real
WikiText-2 blocks (a fresh MLM head on the converted encoder). Skipped without the package."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys

import pytest
import torch

from lmdistill.models import hub, onnx_import

ALIAS = "paraphrase-minilm-l3"
DIST = onnx_import.CONVERTED[ALIAS].dist


def _installed() -> bool:
    try:
        md.distribution(DIST)
        return True
    except md.PackageNotFoundError:
        return False


pytestmark = pytest.mark.skipif(not _installed(), reason=f"needs {DIST}")

KILLED = """
import os, signal
from lmdistill.models import hub, onnx_import
onnx_import._install = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
hub.resolve("paraphrase-minilm-l3")
"""


def test_killed_conversion_then_mlm_finetune_from_the_cli(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    env = {**os.environ, "LMDISTILL_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", KILLED], env=env, capture_output=True, text=True)
    assert p.returncode == -9, p.stderr
    models = cache / "models"
    (left,) = list(models.iterdir())  # the dead conversion's temporary folder, and no model
    assert left.name.startswith(".") and ".tmp-" in left.name
    assert (left / "model.safetensors").exists()

    run = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "lmdistill", "finetune", "--task", "mlm:wikitext2",
                        "--model", ALIAS, "--out", str(run),
                        "-o", "train.max_steps=2", "-o", "train.eval_every=2",
                        "-o", "train.batch_size=8", "-o", "train.num_threads=1",
                        "-o", "train.progress=false", "-o", "data.mlm_block_size=32",
                        "-o", "data.mlm_max_blocks=48"],
                       env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    (folder,) = list(models.iterdir())  # the leftover is gone, the model is in place
    assert folder.name.startswith(f"{ALIAS}-") and (folder / onnx_import.MANIFEST).exists()
    res = json.loads((run / "metrics.json").read_text())
    assert res["model"] == ALIAS and res["steps"] == 2 and res["masked_tokens"] > 0
    # the converted encoder (no pooler) + a BERT MLM head: transform, LayerNorm, bias (the
    # decoder is tied to the word embeddings)
    assert res["params"] == res["trainable_params"] == 17_241_984 + 384 * 385 + 2 * 384 + 30522
    monkeypatch.setenv("LMDISTILL_CACHE", str(cache))
    from transformers import BertModel

    enc = BertModel.from_pretrained(hub.resolve(ALIAS)).state_dict()
    trained = hub.load_mlm_model(str(run / "model")).state_dict()
    k = "encoder.layer.0.attention.self.query.weight"
    assert trained["bert." + k].shape == enc[k].shape
    assert not torch.equal(trained["bert." + k], enc[k])  # the whole model trained
