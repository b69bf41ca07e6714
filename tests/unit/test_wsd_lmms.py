"""The LMMS-style nearest-neighbour sense teacher: cosine scoring and the first-sense back-off
against hand-computed values, layer combination, and a synthetic problem with a known answer
(a word's sense set by a context word) that the teacher built and tuned on must solve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmdistill.data.wsd import Sentence, Token
from lmdistill.methods.lexical.lmms import (Choice, SenseTeacher, build_sense_vectors,
                                            combine_layers, flat_scores, nn_predict, pick)
from lmdistill.methods.lexical.lmms_tune import tune


def test_cosine_scoring_by_hand():
    q = np.array([1.0, 0.0])
    vec = {"a": np.array([1.0, 1.0]), "b": np.array([0.0, 2.0]), "c": np.array([3.0, 0.5])}
    # cos(q, a) = 1/√2 ≈ 0.7071, cos(q, b) = 0, cos(q, c) = 3/√9.25 ≈ 0.9864: c wins
    assert nn_predict(q, ["a", "b", "c"], vec) == ("c", False)
    # gloss term: cos(q, g_a) = 1, cos(q, g_c) = -1; with beta = 0.5:
    # a: 0.7071 + 0.5 = 1.2071 > c: 0.9864 - 0.5 = 0.4864
    gloss = {"a": np.array([2.0, 0.0]), "c": np.array([-1.0, 0.0])}
    assert nn_predict(q, ["a", "b", "c"], vec, gloss, beta=0.5)[0] == "a"
    cc = np.array([1 / math.sqrt(2), 0.0, 3 / math.sqrt(9.25)])
    s = flat_scores(cc, np.array([1.0, np.nan, -1.0]), np.log([0.5, 0.3, 0.2]), 0.5, 0.1)
    assert s == pytest.approx([1 / math.sqrt(2) + 0.5 + 0.1 * math.log(0.5),
                               0.0 + 0.1 * math.log(0.3),
                               3 / math.sqrt(9.25) - 0.5 + 0.1 * math.log(0.2)])
    # the prior: w·log p shifts the choice to a (p = 0.9 vs 0.05) once w > 0.28/2.89 ≈ 0.097
    lp = np.log([0.9, 0.05, 0.05])
    assert nn_predict(q, ["a", "b", "c"], vec, logprior=lp, w=0.09)[0] == "c"
    assert nn_predict(q, ["a", "b", "c"], vec, logprior=lp, w=0.11)[0] == "a"


def test_backoff_to_first_sense_and_uncovered_candidates():
    q = np.array([0.0, 1.0])
    # no candidate has a vector: WordNet's first sense, flagged as a back-off
    assert nn_predict(q, ["k1", "k2"], {}) == ("k1", True)
    # only the second has one: it is chosen even though its cosine is negative
    assert nn_predict(q, ["k1", "k2"], {"k2": np.array([0.0, -1.0])}) == ("k2", False)
    # ties go to the first (more frequent) candidate
    assert nn_predict(q, ["k1", "k2"], {"k1": np.array([1.0, 1.0]),
                                        "k2": np.array([2.0, 2.0])}) == ("k1", False)
    best, back = pick(np.array([np.nan, np.nan, 0.1, 0.3, np.nan]), np.array([0, 2, 4, 5]))
    assert best.tolist() == [0, 1, 0] and back.tolist() == [True, False, True]


def test_combine_layers_by_hand():
    x = np.array([[[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]]])  # [1, H=3, d=2]
    assert combine_layers(x, (-1,)).tolist() == [[0.0, 2.0]]
    assert combine_layers(x, (1, 2), "sum").tolist() == [[1.0, 2.0]]
    assert combine_layers(x, (0, 2), "concat") == pytest.approx(np.array([[0.6, 0.8, 0, 1]]))


# ------------------------------------------------------------------ a known answer
CONTEXT = ["river", "money", "water", "loan", "the"]


class BagEncoder:
    """A fake encoder: a target's vector is the count of each context word in its sentence
    (other than itself), plus the target word's own index, at two 'hidden states'; the second
    state also carries seeded noise."""

    n_states, dim, ref, truncated = 2, len(CONTEXT) + 1, "bag", 0

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def __call__(self, items, progress=False, desc=""):
        out = []
        for words, targets in items:
            vs = np.zeros((len(targets), 2, self.dim), np.float32)
            for t, pos in enumerate(targets):
                for i, w in enumerate(words):
                    if i not in pos and w.lower() in CONTEXT:
                        vs[t, :, CONTEXT.index(w.lower())] += 1
                vs[t, :, -1] = 0.5
                vs[t, 1] += self.rng.normal(0, 0.3, self.dim)
            out.append(vs)
        return out


SHORE, BANK_FIN = "bank%1:17:01::", "bank%1:14:00::"  # WordNet's first and second senses


def _corpus(n_docs: int = 10):
    """Documents of sentences 'the bank near the river/water' (shore sense) and 'the bank
    gave money/a loan' (financial sense)."""
    sents, gold = [], {}
    for d in range(n_docs):
        for k in range(6):
            fin = (k + d) % 2 == 0
            ctx = ["money", "loan"][k % 2] if fin else ["river", "water"][k % 2]
            s = Sentence(f"d{d:03d}.s{k:03d}", [Token("the", "the", "DET"),
                                                 Token("bank", "bank", "NOUN",
                                                       f"d{d:03d}.s{k:03d}.t000"),
                                                 Token("near", "near", "ADP"),
                                                 Token(ctx, ctx, "NOUN")])
            sents.append(s)
            gold[s.tokens[1].id] = [BANK_FIN if fin else SHORE]
    return sents, gold


@pytest.fixture
def cache(lexical_cache, monkeypatch):
    monkeypatch.setenv("LMDISTILL_CACHE", str(lexical_cache))
    return lexical_cache


def test_teacher_picks_the_sense_the_context_word_sets(tmp_path, cache, data_dir):
    enc = BagEncoder()
    ix = build_sense_vectors(tmp_path / "sv", corpus=_corpus(), holdout=0.2, seed=1,
                             encode=enc)
    assert ix["documents"] == 10 and len(ix["heldout_documents"]) == 2
    assert ix["senses"] == 2 and ix["train_instances"] == 48
    res = tune(tmp_path / "sv", data_dir, encode=enc,
               grid={"layers": [(0,), (1,), (0, 1)], "beta": (0.0, 1.0), "w": (0.0, 0.1)})
    assert res["heldout_instances"] == 12 and res["heldout_f1"] == 1.0
    assert res["heldout_mfs_f1"] == 0.5  # half the held-out tokens are the financial sense
    t = SenseTeacher(tmp_path / "sv", data_dir, encode=enc)
    assert t.counts.sum() == 60  # "all": the held-out tokens join the sense vectors
    tests = [Sentence("x.s0", [Token("money", "money", "NOUN"),
                               Token("bank", "bank", "NOUN", "x.s0.t0")]),
             Sentence("x.s1", [Token("water", "water", "NOUN"),
                               Token("bank", "bank", "NOUN", "x.s1.t0")])]
    ids, q, cands, _ = t.queries(tests, {})
    assert cands[0][:2] == [SHORE, BANK_FIN] and len(cands[0]) == 10
    pred, back = t.predict(ids, q, cands)
    assert pred == {"x.s0.t0": BANK_FIN, "x.s1.t0": SHORE} and back == 0
    # centred on the mean SemCor token vector: the same answers
    assert t.predict(ids, q, cands, Choice(layers=(0,), center="global"))[0] == pred
    # coverage "semcor": the 8 other senses of bank have no vector and cannot win
    pred, _ = t.predict(ids, q, cands, Choice(layers=(0,), coverage="semcor"))
    assert pred == {"x.s0.t0": BANK_FIN, "x.s1.t0": SHORE}
    # a lemma SemCor never tagged: every candidate lacks a vector → WordNet's first sense
    ids, q, cands, _ = t.queries([Sentence("y", [Token("river", "river", "NOUN"),
                                                 Token("plant", "plant", "NOUN", "y.t0")])], {})
    pred, back = t.predict(ids, q, cands, Choice(layers=(0,), coverage="semcor"))
    assert pred == {"y.t0": cands[0][0]} and back == 1


def test_layer_grid_fits_the_encoder():
    from lmdistill.methods.lexical.lmms_tune import _layer_grid

    assert _layer_grid(7) == [(-1,), (-2,), (-3,), (-2, -1), (-4, -3, -2, -1),
                              (1, 2, 3, 4, 5, 6)]
    assert _layer_grid(3) == [(-1,), (-2,), (-2, -1)]  # a 2-layer student: no embeddings
    assert _layer_grid(2) == [(-1,)]
