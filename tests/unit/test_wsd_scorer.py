"""WSD: the official scorer on hand-made cases, WordNet senses, gloss-pair construction."""

from __future__ import annotations

import pytest

from lmdistill.data.gloss import (context, gloss_pairs, mfs_predictions,
                                  predictions_from_scores)
from lmdistill.data.wordnet import load_wordnet, senses
from lmdistill.data.wsd import Sentence, Token, score
from lmdistill.errors import DataError


def test_scorer_by_hand():
    gold = {"a": ["k1"], "b": ["k2", "k3"], "c": ["k4"], "d": ["k5"]}
    # a right, b right (one of two gold keys), c wrong, d unanswered
    r = score(gold, {"a": "k1", "b": "k3", "c": "kx"})
    assert (r["precision"], r["recall"]) == pytest.approx((2 / 3, 2 / 4))
    assert r["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert (r["answered"], r["total"]) == (3, 4)
    # several keys for one instance: fractional credit (the official scorer)
    r = score({"a": ["k1"]}, {"a": ["k1", "k2"]})
    assert r["precision"] == pytest.approx(0.5) and r["recall"] == pytest.approx(0.5)
    assert score({"a": ["k1"]}, {})["f1"] == 0.0
    with pytest.raises(DataError, match="not in the gold"):
        score(gold, {"zz": "k1"})


@pytest.fixture(scope="module")
def wn(data_dir):
    return load_wordnet(data_dir)


def test_wordnet_senses_and_keys_resolve(wn):
    s = senses(wn, "bank", "NOUN")
    assert len(s) == 10 and s[0][0] == "bank%1:17:01::"  # the most frequent sense first
    assert "sloping land" in s[0][1]
    for key, gloss in s:
        assert wn.lemma_from_key(key).synset().definition() == gloss
    assert senses(wn, "change_ringing", "NOUN")[0][0] == "change_ringing%1:04:00::"
    assert senses(wn, "peculiar", "ADJ")[0][0].startswith("peculiar%5")  # satellites count
    assert senses(wn, "qwzx", "NOUN") == []


def _sentence():
    return Sentence("d0.s0", [Token("The", "the", "DET"), Token("bank", "bank", "NOUN", "i0"),
                              Token("raised", "raise", "VERB", "i1"),
                              Token("rates", "rate", "NOUN")])


def test_gloss_pairs_construction(wn):
    s = _sentence()
    gold = {"i0": ["bank%1:14:00::"], "i1": ["raise%2:30:00::"]}
    rows, insts = gloss_pairs([s], gold, wn)  # evaluation: every candidate
    assert context(s, 1) == 'The " bank " raised rates'
    bank = [r for r in rows if r[3]["group"] == 0]
    assert len(bank) == len(senses(wn, "bank", "NOUN"))
    assert all(r[0] == 'The " bank " raised rates' for r in bank)
    assert bank[0][1].startswith("bank : ") and sum(r[2] for r in bank) == 1
    assert [r[1] for r in bank if r[2]] == [
        "bank : " + wn.lemma_from_key("bank%1:14:00::").synset().definition()]
    assert insts[0].keys == [k for k, _ in senses(wn, "bank", "NOUN")]
    # training: gold + the 2 most frequent other senses (hard negatives)
    rows, insts = gloss_pairs([s], gold, wn, negatives=2)
    bank = [r for r in rows if r[3]["group"] == 0]
    keys = insts[0].keys
    assert len(bank) == 3 and "bank%1:14:00::" in keys
    assert [k for k in keys if k != "bank%1:14:00::"] == [
        k for k, _ in senses(wn, "bank", "NOUN") if k != "bank%1:14:00::"][:2]
    # a gold key outside the candidates: dropped for training, kept (as an error) otherwise
    bad = {"i0": ["bank%9:99:99::"], "i1": ["raise%2:30:00::"]}
    assert [i.id for i in gloss_pairs([s], bad, wn, negatives=2)[1]] == ["i1"]
    assert [i.id for i in gloss_pairs([s], bad, wn)[1]] == ["i0", "i1"]


def test_predictions_from_scores_and_mfs(wn):
    s = _sentence()
    gold = {"i0": ["bank%1:14:00::"], "i1": ["raise%2:30:00::"]}
    rows, insts = gloss_pairs([s], gold, wn)
    scores = [0.0] * len(rows)
    right = next(k for k, r in enumerate(rows) if r[2] and r[3]["group"] == 0)
    scores[right] = 5.0
    pred = predictions_from_scores(insts, [r[3]["group"] for r in rows], scores)
    assert pred["i0"] == "bank%1:14:00::"
    assert pred["i1"] == insts[1].keys[0]  # all tied: the first (most frequent) sense
    mfs = mfs_predictions([s], wn)
    assert mfs == {"i0": senses(wn, "bank", "NOUN")[0][0],
                   "i1": senses(wn, "raise", "VERB")[0][0]}
