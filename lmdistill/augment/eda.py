"""EDA (Wei & Zou, EMNLP 2019): four cheap edits of a sentence.

- synonym replacement (SR): ``n = max(1, α_sr·len)`` content words (not stop words) replaced by
  a WordNet synonym *of the part of speech the tagger gives the word in this sentence*;
- random insertion (RI): a synonym of a random content word inserted at a random position;
- random swap (RS): two words swapped, ``n`` times;
- random deletion (RD): each word dropped with probability ``p_rd``; never all of them.

Each augmented sentence applies one operation (``n_aug`` per input, cycling SR, RI, RS, RD).
A pair (text_a, text_b) is edited on both sides with the same operation, so the label stays
with it. Everything is a pure function of the seed and the input's position.
"""

from __future__ import annotations

import random
import re
from typing import Callable, Sequence

STOP = frozenset("""a about above after again against all am an and any are as at be because
been before being below between both but by can did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it its
itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them themselves
then there these they this those through to too under until up very was we were what when where
which while who whom why will with you your yours yourself yourselves 's n't""".split())
OPS = ("sr", "ri", "rs", "rd")
_TOKEN = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]")

Text = str | tuple[str, str]


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


class EDA:
    def __init__(self, wordnet, tag: Callable[[list[str]], list[str]], alpha_sr: float = 0.1,
                 alpha_ri: float = 0.1, alpha_rs: float = 0.1, p_rd: float = 0.1,
                 n_aug: int = 4, ops: Sequence[str] = OPS):
        bad = [o for o in ops if o not in OPS]
        if bad or not ops:
            from ..errors import ConfigError

            raise ConfigError(f"EDA operations must be among {', '.join(OPS)}, got {list(ops)}")
        self.wn, self.tag = wordnet, tag
        self.alpha_sr, self.alpha_ri, self.alpha_rs, self.p_rd = alpha_sr, alpha_ri, alpha_rs, p_rd
        self.n_aug, self.ops = n_aug, tuple(ops)

    # ------------------------------------------------------------------ words
    def synonyms(self, word: str, pos: str) -> list[str]:
        """WordNet synonyms of ``word`` as a ``pos`` (NOUN/VERB/ADJ/ADV), most frequent sense
        first, without the word itself."""
        from ..data.wordnet import UPOS

        p = UPOS.get(pos)
        if p is None:
            return []
        out: list[str] = []
        for syn in self.wn.synsets(word.lower(), p):
            for lem in syn.lemmas():
                w = lem.name().replace("_", " ")
                if w.lower() != word.lower() and w not in out:
                    out.append(w)
        return out

    def _candidates(self, words: list[str]) -> list[int]:
        tags = self.tag(words)
        return [i for i, (w, t) in enumerate(zip(words, tags))
                if w.lower() not in STOP and w.isalpha() and self.synonyms(w, t)], tags

    # ------------------------------------------------------------------ operations
    def sr(self, words: list[str], rng: random.Random) -> list[str]:
        cands, tags = self._candidates(words)
        rng.shuffle(cands)
        out = list(words)
        for i in cands[: max(1, int(self.alpha_sr * len(words)))]:
            out[i] = rng.choice(self.synonyms(words[i], tags[i]))
        return out

    def ri(self, words: list[str], rng: random.Random) -> list[str]:
        cands, tags = self._candidates(words)
        out = list(words)
        for _ in range(max(1, int(self.alpha_ri * len(words)))):
            if not cands:
                break
            i = rng.choice(cands)
            out.insert(rng.randrange(len(out) + 1), rng.choice(self.synonyms(words[i], tags[i])))
        return out

    def rs(self, words: list[str], rng: random.Random) -> list[str]:
        out = list(words)
        if len(out) < 2:
            return out
        for _ in range(max(1, int(self.alpha_rs * len(words)))):
            i, j = rng.sample(range(len(out)), 2)
            out[i], out[j] = out[j], out[i]
        return out

    def rd(self, words: list[str], rng: random.Random) -> list[str]:
        if len(words) <= 1:
            return list(words)
        out = [w for w in words if rng.random() >= self.p_rd]
        return out or [rng.choice(words)]  # never an empty sentence

    # ------------------------------------------------------------------ interface
    def _edit(self, text: str, op: str, rng: random.Random) -> str:
        words = tokenize(text)
        return " ".join(getattr(self, op)(words, rng)) if words else text

    def augment_one(self, text: Text, index: int, seed: int) -> list[Text]:
        rng = random.Random(f"eda:{seed}:{index}")
        out = []
        for k in range(self.n_aug):
            op = self.ops[k % len(self.ops)]
            if isinstance(text, tuple):
                out.append((self._edit(text[0], op, rng), self._edit(text[1], op, rng)))
            else:
                out.append(self._edit(text, op, rng))
        return out

    def __call__(self, texts: Sequence[Text], seed: int = 0) -> list[tuple[int, Text]]:
        return [(i, t) for i, x in enumerate(texts) for t in self.augment_one(x, i, seed)]
