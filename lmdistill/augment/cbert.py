"""Contextual augmentation with a masked LM (Kobayashi 2018; Wu et al. 2019's CBERT): a share
of the words of a sentence is masked and each is replaced by a token sampled from the masked
LM's top-k predictions for that position (never the original token, never a special token or
a word-piece continuation), so the new words fit the context.

Any masked LM works unconditionally: the teachers of ``lmdistill finetune --task
mlm:<corpus>``, or a hub MLM. **Label-conditional CBERT** (Wu et al.): ``lmdistill finetune
--task cbert:<task> --model <mlm>`` (:func:`lmdistill.methods.mlm.cbert.finetune_conditional`) turns the MLM's segment
embeddings into label embeddings (one row per label, each started from segment A's row, so
before training it is the unconditional model) and fine-tunes it with whole-word masking on
the task's labelled sentences, every token's type id = the sentence's label. Such a model
(its config carries ``cbert_labels``) is conditioned at augmentation time on each row's gold
label, so a replacement fits the context *and* the label ("good" is not proposed for a
negative review as readily). Single-sentence tasks only: the segment embedding carries the
label. Deterministic under the seed (one torch generator per input). Pairs (unconditional):
both sides edited.
"""

from __future__ import annotations

import random
from typing import Sequence

import torch

from ..errors import ConfigError

Text = str | tuple[str, str]
#: the config attribute naming a label-conditional model's labels (type id = label id)
LABELS_KEY = "cbert_labels"
PREFIX = "cbert:"


def is_cbert_task(name: str | None) -> bool:
    return bool(name) and name.lower().startswith(PREFIX)


class CBERT:
    def __init__(self, model_ref: str, p: float = 0.15, n_aug: int = 4, topk: int = 10,
                 batch_size: int = 32, max_length: int = 128, device: str | None = None):
        """``device``: where the masked LM runs (default: a CUDA GPU when there is one). The
        sampling stays on the CPU with one CPU generator per input, so the augmented texts
        are the same on every device up to the MLM's numerics."""
        from ..models import hub

        self.tok = hub.load_tokenizer(model_ref)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = hub.load_mlm_model(model_ref).eval().to(self.device)
        #: label names of a label-conditional model (None: unconditional)
        self.labels: list[str] | None = getattr(self.model.config, LABELS_KEY, None)
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
    def _fill(self, items: list[tuple[list[int], list[int], torch.Generator, list[int]]],
              labels: list[int] | None = None):
        n = max(len(ids) for ids, *_ in items)
        x = torch.full((len(items), n), self.tok.pad_token_id)
        mask = torch.zeros_like(x)
        for r, (ids, *_) in enumerate(items):
            x[r, : len(ids)] = torch.tensor(ids)
            mask[r, : len(ids)] = 1
        extra = {}
        if labels is not None:  # every token of a row carries its label as its type id
            extra["token_type_ids"] = torch.tensor(labels)[:, None].expand(-1, n).contiguous()
        inputs = {"input_ids": x, "attention_mask": mask, **extra}
        logits = self.model(**{k: v.to(self.device) for k, v in inputs.items()}
                            ).logits.float().cpu()
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

    def __call__(self, texts: Sequence[Text], seed: int = 0,
                 labels: Sequence[int | None] | None = None) -> list[tuple[int, Text]]:
        """``n_aug`` new versions of every text, as ``(input index, text)``. A
        label-conditional model needs each text's gold ``labels`` (class ids)."""
        if self.labels is not None:
            if labels is None or any(y is None for y in labels):
                raise ConfigError("this CBERT model is label-conditional: every text needs its "
                                  "gold label (augment a task's labelled rows)")
            if any(isinstance(t, tuple) for t in texts):
                raise ConfigError("label-conditional CBERT is for single-sentence tasks")
            bad = [y for y in labels if not 0 <= int(y) < len(self.labels)]
            if bad:
                raise ConfigError(f"label {bad[0]} is out of range for this CBERT model's "
                                  f"{len(self.labels)} labels {self.labels}")
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
            ys = [int(labels[i]) for i, *_ in chunk] if self.labels is not None else None
            for (i, k, s, _), new in zip(chunk, self._fill(plans, ys)):
                filled[(i, k, s)] = new
        out = []
        for i, t in enumerate(texts):
            for k in range(self.n_aug):
                out.append((i, (filled[(i, k, 0)], filled[(i, k, 1)]) if isinstance(t, tuple)
                            else filled[(i, k, 0)]))
        return out
