"""EDA's operations with a fixed tagging: deterministic, deletion never empties a sentence,
synonyms come from WordNet with the tagged part of speech, pairs stay aligned."""

from __future__ import annotations

import random

import pytest

from lmdistill.augment.eda import EDA, tokenize
from lmdistill.data.wordnet import load_wordnet
from lmdistill.errors import ConfigError


@pytest.fixture(scope="module")
def wn(data_dir):
    return load_wordnet(data_dir)


def fixed_tags(mapping):
    return lambda words: [mapping.get(w, "X") for w in words]


def test_synonyms_follow_the_part_of_speech(wn):
    eda = EDA(wn, fixed_tags({}))
    as_noun, as_verb = eda.synonyms("run", "NOUN"), eda.synonyms("run", "VERB")
    assert "tally" in as_noun and "tally" not in as_verb
    assert "operate" in as_verb and "operate" not in as_noun
    assert eda.synonyms("run", "X") == [] and "run" not in as_verb
    # SR replaces only tagged content words, with synonyms of that POS
    tags = {"dog": "NOUN", "runs": "VERB"}
    eda = EDA(wn, fixed_tags(tags), alpha_sr=1.0)
    for k in range(20):
        out = eda.sr(["the", "dog", "runs"], random.Random(k))
        assert out[0] == "the"
        assert out[1] in eda.synonyms("dog", "NOUN") or out[1] == "dog"
        assert out[2] in eda.synonyms("runs", "VERB") or out[2] == "runs"
        assert out != ["the", "dog", "runs"]


def test_deletion_never_empties_and_swap_keeps_words(wn):
    eda = EDA(wn, fixed_tags({}), p_rd=1.0)
    for k in range(50):
        assert len(eda.rd(["good", "movie"], random.Random(k))) == 1
        assert eda.rd(["one"], random.Random(k)) == ["one"]
    eda = EDA(wn, fixed_tags({}), alpha_rs=0.5)
    words = "a b c d e f".split()
    out = eda.rs(words, random.Random(0))
    assert sorted(out) == sorted(words) and out != words


def test_deterministic_and_pairs_stay_aligned(wn):
    tags = {"film": "NOUN", "charming": "ADJ", "man": "NOUN", "guitar": "NOUN"}
    eda = EDA(wn, fixed_tags(tags), n_aug=4)
    texts = ["the film is charming", ("a man plays guitar", "music by a man")]
    a, b = eda(texts, seed=3), eda(texts, seed=3)
    assert a == b and eda(texts, seed=4) != a
    assert [i for i, _ in a] == [0] * 4 + [1] * 4
    for i, t in a[4:]:
        assert isinstance(t, tuple) and len(t) == 2 and all(t)
    with pytest.raises(ConfigError, match="EDA operations"):
        EDA(wn, fixed_tags({}), ops=["shout"])
    assert tokenize("It's a film-maker's dream, isn't it?") == [
        "It's", "a", "film-maker's", "dream", ",", "isn't", "it", "?"]
