"""A part-of-speech tagger for augmentation, trained once on SemCor 3.0's tags.

No tagger model ships with NLTK offline, but SemCor (converted by
:func:`lmdistill.data.wsd.convert_semcor`) tags every sense-annotated word with its part of
speech: NLTK's averaged perceptron is trained on those sentences (content words NOUN / VERB /
ADJ / ADV, everything else X or "."), and its weights are cached as JSON (no pickles).
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path

TAGS = ("NOUN", "VERB", "ADJ", "ADV")


def tagger_path() -> Path:
    from ..cache import cache_root

    return cache_root() / "tagger" / "semcor-upos-v1.json"


def _new():
    from nltk.tag.perceptron import PerceptronTagger

    return PerceptronTagger(load=False)


def train_tagger(data_dir=None, sentences: int = 12000, iterations: int = 5, seed: int = 0):
    from ..data.wsd import evaluation_set

    sents, _ = evaluation_set("semcor", data_dir)
    rng = random.Random(seed)
    pick = rng.sample(sents, min(sentences, len(sents)))
    data = [[(t.text.replace("_", " "), t.pos if t.pos in TAGS or t.pos == "." else "X")
             for t in s.tokens] for s in pick]
    tagger = _new()
    random.seed(seed)  # NLTK's perceptron shuffles with the global random module
    tagger.train(data, nr_iter=iterations)
    return tagger


def save(tagger, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"weights": tagger.model.weights, "tagdict": tagger.tagdict,
                               "classes": sorted(tagger.classes)}))
    tmp.rename(path)


def load(path: Path):
    d = json.loads(path.read_text())
    tagger = _new()
    tagger.model.weights = d["weights"]
    tagger.tagdict = d["tagdict"]
    tagger.classes = set(d["classes"])
    tagger.model.classes = tagger.classes
    return tagger


@lru_cache(maxsize=2)
def get_tagger(data_dir: str | None = None):
    """The cached SemCor tagger (trained on first use, ~a minute)."""
    p = tagger_path()
    if not p.exists():
        save(train_tagger(data_dir), p)
    return load(p)


def tag(tokens: list[str], data_dir=None) -> list[str]:
    return [t for _, t in get_tagger(None if data_dir is None else str(data_dir)).tag(tokens)]
