"""CBERT-style contextual augmentation with a masked LM (a tiny random BertForMaskedLM with the
real vocabulary, saved locally): outputs stay in the vocabulary, are deterministic under the
seed, change words, and keep pairs aligned; the CLI writes them."""

from __future__ import annotations

import json

import pytest

from conftest import make_tiny_mlm
from lmdistill.augment.cbert import CBERT
from lmdistill.cli import main as cli_main


@pytest.fixture(scope="module")
def mlm(tiny_bert, tmp_path_factory):
    return make_tiny_mlm(tiny_bert, tmp_path_factory.mktemp("cbert-mlm"), seed=5)


def test_cbert_outputs_in_vocabulary_deterministic_and_aligned(mlm):
    aug = CBERT(str(mlm), p=0.3, n_aug=3, topk=5)
    texts = ["the film is a charming and often affecting journey",
             ("a man is playing a guitar", "a person plays music on stage")]
    a, b = aug(texts, seed=1), aug(texts, seed=1)
    assert a == b and aug(texts, seed=2) != a
    assert [i for i, _ in a] == [0, 0, 0, 1, 1, 1]
    vocab = aug.tok.get_vocab()
    special = set(aug.tok.all_special_tokens)
    for i, t in a:
        for side, orig in zip(t if isinstance(t, tuple) else (t,),
                              texts[i] if isinstance(texts[i], tuple) else (texts[i],)):
            toks = aug.tok.tokenize(side)
            assert toks and all(x in vocab and x not in special for x in toks)
            assert side != orig  # at least one word re-sampled
            assert abs(len(side.split()) - len(orig.split())) <= 3
        if i == 1:
            assert isinstance(t, tuple) and len(t) == 2


def test_cli_cbert_and_missing_mlm(mlm, tmp_path, capsys):
    out = tmp_path / "cb.jsonl"
    cli_main(["augment", "--method", "cbert", "--mlm", str(mlm), "--task", "sst2",
              "--limit", "4", "--n-aug", "2", "--out", str(out)])
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 8 and all(r["method"] == "cbert" and r["text_a"] for r in rows)
    with pytest.raises(SystemExit):
        cli_main(["augment", "--method", "cbert", "--task", "sst2", "--out",
                  str(tmp_path / "x.jsonl")])
    assert "masked LM" in capsys.readouterr().err


def test_l2a_generator_chains_from_source_and_target(mlm):
    from lmdistill.methods.l2a.generator import Generator

    target = ["a quiet , moving film", "the acting is superb"]
    source = ["this blender broke after a week", "great value for the price"]
    gen = Generator(str(mlm), chain_length=2, p=0.3)
    vocab = gen.cbert.tok.get_vocab()
    for mix, origins in ((0.0, {"target"}), (1.0, {"source"})):
        gen.source_mix = mix
        cands = gen(target, source, n=6, seed=0)
        assert len(cands) == 6 and {c.origin for c in cands} == origins
        for c in cands:
            pool = target if c.origin == "target" else source
            assert 0 <= c.start < len(pool) and c.steps == 2 and c.text != pool[c.start]
            assert all(t in vocab for t in gen.cbert.tok.tokenize(c.text))
    gen.source_mix = 0.5
    a, b = gen(target, source, n=8, seed=3), gen(target, source, n=8, seed=3)
    assert [c.text for c in a] == [c.text for c in b]
    assert {c.origin for c in a} == {"source", "target"}
