"""L2A's data generator: masked-LM corrupt-and-reconstruct chains.

A chain starts from a target-domain sample (probability ``1 − source_mix``) or a source-domain
sample (``source_mix``) and applies ``chain_length`` rounds of "mask a share of the words, let
the masked LM re-write them in context" (:class:`lmdistill.augment.cbert.CBERT`, one copy per
round, a new masking each round). Later rounds move further from the start; candidates from
source samples are pulled towards fluent text the masked LM knows, and the selector decides
which help. Deterministic under the seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from ...augment.cbert import CBERT

Text = str | tuple[str, str]


@dataclass
class Candidate:
    text: Text
    origin: str          # "source" | "target"
    start: int           # index of the sample the chain started from (in its own domain)
    steps: int           # corrupt-and-reconstruct rounds applied


class Generator:
    def __init__(self, mlm: str | CBERT, chain_length: int = 2, p: float = 0.15,
                 source_mix: float = 0.5, topk: int = 10):
        if chain_length < 1:
            from ...errors import ConfigError

            raise ConfigError("the generator's chain_length must be at least 1")
        self.cbert = mlm if isinstance(mlm, CBERT) else CBERT(mlm, p=p, n_aug=1, topk=topk)
        self.cbert.n_aug = 1
        self.chain_length, self.source_mix = chain_length, source_mix

    def __call__(self, target: Sequence[Text], source: Sequence[Text], n: int,
                 seed: int = 0) -> list[Candidate]:
        """``n`` candidates, each the end of one chain."""
        rng = random.Random(f"l2a-gen:{seed}")
        starts = []
        for _ in range(n):
            use_src = bool(source) and (not target or rng.random() < self.source_mix)
            pool, origin = (source, "source") if use_src else (target, "target")
            i = rng.randrange(len(pool))
            starts.append((pool[i], origin, i))
        texts = [s[0] for s in starts]
        for step in range(self.chain_length):
            texts = [t for _, t in self.cbert(texts, seed=seed * 1000 + step)]
        return [Candidate(t, o, i, self.chain_length) for t, (_, o, i) in zip(texts, starts)]
