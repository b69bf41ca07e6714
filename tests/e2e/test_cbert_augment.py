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


def test_label_conditional_cbert_learns_label_specific_words(mlm, tmp_path):
    """Label-conditional CBERT end to end: before training the label embeddings are copies
    of segment A (every label gives the unconditional model's predictions); after
    `finetune --task cbert:<task>` on a toy task where the last word says the label ("good" /
    "bad"), the model fills "the film was [MASK]" with the word of the label it is given, and
    `augment` conditions each row on its own label."""
    import torch

    from lmdistill import api
    from lmdistill import config as C
    from lmdistill.methods.mlm.cbert import condition_on_labels
    from lmdistill.data import tasks as TK
    from lmdistill.errors import ConfigError
    from lmdistill.methods.mlm.run import load_mlm_model

    tok = CBERT(str(mlm)).tok
    x = tok(["the film was " + tok.mask_token], return_tensors="pt")
    m = load_mlm_model(str(mlm)).eval()
    with torch.no_grad():
        plain = m(**{k: v for k, v in x.items() if k != "token_type_ids"}).logits
        condition_on_labels(m, ["negative", "positive", "neutral"])
        assert m.config.type_vocab_size == 3
        for y in range(3):
            got = m(input_ids=x["input_ids"], attention_mask=x["attention_mask"],
                    token_type_ids=torch.full_like(x["input_ids"], y)).logits
            assert torch.allclose(got, plain, atol=1e-5)

    nouns = ["film", "movie", "story", "plot", "cast", "script", "score", "show"]
    rows = [(f"the {n} was {w}", None, y) for n in nouns for y, w in ((0, "bad"), (1, "good"))]
    task = TK.Task.from_examples("toy-sentiment", {"train": rows * 8, "dev": rows},
                                 ["negative", "positive"])
    TK.register_task("toy-sentiment", task)
    try:
        out = tmp_path / "cbert"
        res = api.finetune(C.build(C.FinetuneConfig, overrides={
            "output_dir": str(out), "model.name": str(mlm), "data.task": "cbert:toy-sentiment",
            "data.max_length": 16, "data.mlm_probability": 0.5, "train.epochs": 30,
            "train.batch_size": 16, "train.lr": 3e-3, "train.warmup_ratio": 0.0,
            "train.progress": False, "train.num_threads": 1}))
        assert res["labels"] == ["negative", "positive"] and res["mlm_accuracy"] > 0.5
        cond = load_mlm_model(str(out / "model")).eval()
        assert cond.config.cbert_labels == ["negative", "positive"]
        good, bad = tok.convert_tokens_to_ids(["good", "bad"])
        pos = x["input_ids"][0].tolist().index(tok.mask_token_id)
        with torch.no_grad():
            for y, want, other in ((0, bad, good), (1, good, bad)):
                lg = cond(input_ids=x["input_ids"], attention_mask=x["attention_mask"],
                          token_type_ids=torch.full_like(x["input_ids"], y)).logits[0, pos]
                assert lg[want] > lg[other] + 1.0, (y, float(lg[want]), float(lg[other]))
        aug = CBERT(str(out / "model"), p=0.3, n_aug=2, topk=3)
        assert aug.labels == ["negative", "positive"]
        with pytest.raises(ConfigError, match="label-conditional"):
            aug(["the film was bad"], seed=0)
        with pytest.raises(ConfigError, match="out of range"):
            aug(["the film was bad"], seed=0, labels=[2])
        got = api.augment("cbert", tmp_path / "c.jsonl", task="toy-sentiment", mlm=str(out /
                                                                                   "model"),
                          n_aug=2, limit=4)
        assert got["outputs"] == 8
        with pytest.raises(ConfigError, match="single-sentence"):
            api.finetune(C.build(C.FinetuneConfig, overrides={
                "output_dir": str(tmp_path / "pair"), "model.name": str(mlm),
                "data.task": "cbert:mrpc", "data.limit": 4, "train.progress": False}))
    finally:
        TK.unregister_task("toy-sentiment")
