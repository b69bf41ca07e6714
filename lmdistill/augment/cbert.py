"""Contextual augmentation with a masked LM (Kobayashi 2018; Wu et al. 2019's CBERT without
the label conditioning): a share of the words of a sentence is masked and each is replaced by
a token sampled from the masked LM's top-k predictions for that position (never the original
token, never a special token or a word-piece continuation), so the new words fit the context.

Any masked LM works: the teachers of ``lmdistill finetune --task mlm:<corpus>``, or a hub MLM.
Label-conditional CBERT (label embeddings in place of segment embeddings, fine-tuned per task)
is not implemented: this is the unconditional variant, with the teacher labelling the result.
Deterministic under the seed (one torch generator per input). Pairs: both sides edited.
"""

from __future__ import annotations

import random
from typing import Sequence

import torch

Text = str | tuple[str, str]


class CBERT:
    def __init__(self, model_ref: str, p: float = 0.15, n_aug: int = 4, topk: int = 10,
                 batch_size: int = 32, max_length: int = 128):
        from ..methods.mlm.run import load_mlm_model
        from ..models import hub

        self.tok = hub.load_tokenizer(model_ref)
        self.model = load_mlm_model(model_ref).eval()
        self.p, self.n_aug, self.topk = p, n_aug, topk
        self.batch_size, self.max_length = batch_size, max_length
        vocab = self.tok.get_vocab()
        special = set(self.tok.all_special_ids)
        self.banned = torch.tensor([i for t, i in vocab.items() if i in special
                                    or t.startswith("##") or t.startswith("[")])

    def _masked(self, text: str, rng: random.Random):
        """Token ids with some whole words masked (one [MASK] for the word's first piece, its
        later pieces dropped), the masked positions and the original first pieces."""
        enc = self.tok(text, truncation=True, max_length=self.max_length)
        ids, words = enc["input_ids"], enc.word_ids()
        firsts = [i for i, w in enumerate(words)
                  if w is not None and (i == 0 or words[i - 1] != w)]
        if not firsts:
            return ids, [], []
        k = max(1, int(round(self.p * len(firsts))))
        chosen = set(rng.sample(firsts, min(k, len(firsts))))
        masked_words = {words[i] for i in chosen}
        out, pos, orig = [], [], []
        for i, (t, w) in enumerate(zip(ids, words)):
            if i in chosen:
                pos.append(len(out))
                orig.append(t)
                out.append(self.tok.mask_token_id)
            elif w is not None and w in masked_words:
                continue  # a later piece of a masked word: the whole word is replaced
            else:
                out.append(t)
        return out, pos, orig

    @torch.inference_mode()
    def _fill(self, items: list[tuple[list[int], list[int], torch.Generator, list[int]]]):
        n = max(len(ids) for ids, *_ in items)
        x = torch.full((len(items), n), self.tok.pad_token_id)
        mask = torch.zeros_like(x)
        for r, (ids, *_) in enumerate(items):
            x[r, : len(ids)] = torch.tensor(ids)
            mask[r, : len(ids)] = 1
        logits = self.model(input_ids=x, attention_mask=mask).logits.float()
        out = []
        for r, (ids, pos, gen, orig) in enumerate(items):
            ids = list(ids)
            for q, p in enumerate(pos):
                lg = logits[r, p].clone()
                lg[self.banned] = float("-inf")
                lg[orig[q]] = float("-inf")
                top = lg.topk(self.topk)
                probs = top.values.softmax(-1)
                ids[p] = int(top.indices[torch.multinomial(probs, 1, generator=gen)])
            out.append(self.tok.decode(ids, skip_special_tokens=True,
                                       clean_up_tokenization_spaces=True))
        return out

    def _plan(self, text: str, index: int, k: int, seed: int, side: int):
        rng = random.Random(f"cbert:{seed}:{index}:{k}:{side}")
        ids, pos, orig = self._masked(text, rng)
        gen = torch.Generator().manual_seed(rng.randrange(2 ** 31))
        return ids, pos, gen, orig

    def __call__(self, texts: Sequence[Text], seed: int = 0) -> list[tuple[int, Text]]:
        jobs = []  # (input index, aug k, side, text)
        for i, t in enumerate(texts):
            for k in range(self.n_aug):
                sides = t if isinstance(t, tuple) else (t,)
                for s, x in enumerate(sides):
                    jobs.append((i, k, s, x))
        filled: dict[tuple[int, int, int], str] = {}
        for b in range(0, len(jobs), self.batch_size):
            chunk = jobs[b: b + self.batch_size]
            plans = [self._plan(x, i, k, seed, s) for i, k, s, x in chunk]
            for (i, k, s, _), new in zip(chunk, self._fill(plans)):
                filled[(i, k, s)] = new
        out = []
        for i, t in enumerate(texts):
            for k in range(self.n_aug):
                out.append((i, (filled[(i, k, 0)], filled[(i, k, 1)]) if isinstance(t, tuple)
                            else filled[(i, k, 0)]))
        return out
