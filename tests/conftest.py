"""Shared fixtures: the real data directory and tiny real-vocabulary models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LMDISTILL_DATA", str(REPO.parent / "shared" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return Path(os.environ["LMDISTILL_DATA"])


def make_tiny_bert(path: Path, layers: int = 2, hidden: int = 32, heads: int = 2,
                   seed: int = 0) -> Path:
    """A randomly initialised BERT encoder with the real minilm-l6 tokenizer (bert-base-uncased
    vocab), saved as an HF folder: fast enough for end-to-end tests on real data."""
    import torch
    from transformers import BertConfig, BertModel

    from lmdistill.models import hub

    tok = hub.load_tokenizer("minilm-l6")
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=hidden * 2,
                     max_position_embeddings=128)
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def make_tiny_mlm(bert: Path, path: Path, seed: int = 0) -> Path:
    """A 'hub MLM': a BertForMaskedLM on ``bert``'s encoder with its own random head, and the
    real tokenizer, saved as an HF folder."""
    import torch
    from transformers import BertForMaskedLM

    from lmdistill.models import hub

    torch.manual_seed(seed)
    BertForMaskedLM.from_pretrained(str(bert)).save_pretrained(path)
    hub.load_tokenizer(str(bert)).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def lexical_cache(tmp_path_factory):
    """One cache directory for the tests that need SemCor converted, WordNet copied for NLTK
    or the SemCor POS tagger trained: each is done once per session, not once per module."""
    mp = pytest.MonkeyPatch()
    d = tmp_path_factory.mktemp("lexcache")
    mp.setenv("LMDISTILL_CACHE", str(d))
    yield d
    mp.undo()


def pytest_collection_modifyitems(config, items):
    """Every end-to-end test (``tests/e2e``: real data, models trained for a few steps) is
    ``slow``; ``pytest -m "not slow"`` runs the unit tests only (a few minutes)."""
    for item in items:
        if "e2e" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.slow)
