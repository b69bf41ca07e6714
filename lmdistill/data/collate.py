"""Tokenize once, pad dynamically, bucket by length, shard batches across processes.

Padding every batch to the longest sequence *in that batch* and grouping similar lengths
(sorting within large shuffled pools) is what makes CPU training affordable: SST-2 sentences
average ~13 tokens, so padding to 128 would waste ~90% of the compute.

Batch order is a pure function of ``(seed, epoch)``, which is what lets a resumed run skip
exactly the batches it already trained on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from ..errors import DataError
from .tasks import Example


IGNORE_INDEX = -100
#: batch fields that extras may not take
RESERVED = ("input_ids", "attention_mask", "token_type_ids", "index", "labels")
#: the extra that weights each example in every loss (normalised by the batch's sum of weights)
WEIGHT = "weight"


@dataclass
class Encoded:
    """Token ids of one split, aligned with its examples (same order)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: list[int | float | None]
    idx: list[int]
    texts: list[tuple[str, str | None]]
    pad_id: int
    #: per-example extras (``Example.meta``): name -> one number per example
    extras: dict[str, list[float | int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)

    def subset(self, indices: list[int]) -> "Encoded":
        """The rows ``indices`` (in that order) as an Encoded of their own."""
        return Encoded(
            input_ids=[self.input_ids[i] for i in indices],
            token_type_ids=[self.token_type_ids[i] for i in indices]
            if self.token_type_ids else None,
            labels=[self.labels[i] for i in indices], idx=[self.idx[i] for i in indices],
            texts=[self.texts[i] for i in indices], pad_id=self.pad_id,
            extras={k: [v[i] for i in indices] for k, v in self.extras.items()})

    def add_extra(self, name: str, values) -> None:
        """Attach a per-example field (e.g. a prototype score computed after encoding); it
        reaches every batch as ``batch[name]``."""
        values = list(values)
        if len(values) != len(self):
            raise DataError(f"extra '{name}' has {len(values)} values for {len(self)} examples")
        if name in RESERVED:
            raise DataError(f"extra '{name}' would overwrite a batch field; reserved: "
                            f"{', '.join(RESERVED)}")
        self.extras[name] = values

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.input_ids]


def encode(examples: list[Example], tokenizer, max_length: int = 128) -> Encoded:
    """Tokenize ``examples`` in one fast batched call (no padding here)."""
    a = [e.text_a for e in examples]
    b = [e.text_b for e in examples] if examples and examples[0].text_b is not None else None
    out = tokenizer(a, b, truncation=True, max_length=max_length, padding=False)
    tt = out.get("token_type_ids")
    enc = Encoded(
        input_ids=out["input_ids"],
        token_type_ids=tt,
        labels=[e.label for e in examples],
        idx=[e.idx for e in examples],
        texts=[(e.text_a, e.text_b) for e in examples],
        pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
    )
    names = {k for e in examples if e.meta for k in e.meta}
    for name in sorted(names):
        missing = [e.idx for e in examples if not e.meta or name not in e.meta]
        if missing:
            raise DataError(f"extra '{name}' is missing for {len(missing)} examples "
                            f"(first: row {missing[0]}); give every example the same extras")
        enc.add_extra(name, [e.meta[name] for e in examples])
    return enc


def length_bucketed_batches(
    lengths: list[int], batch_size: int, seed: int, epoch: int, pool_factor: int = 50
) -> list[list[int]]:
    """Shuffled batches of similar length: shuffle, sort inside pools of
    ``batch_size * pool_factor`` examples, cut into batches, shuffle the batches."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = max(batch_size * pool_factor, batch_size)
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches: all examples sorted by length (least padding), fixed order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[j : j + batch_size] for j in range(0, len(order), batch_size)]


def shard_batches(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """This rank's batches, so that across ranks every example is used exactly once and every
    rank takes the same number of steps (DDP needs that): the batches that don't divide evenly
    are pooled and re-cut into ``world`` equal-count groups, one per rank."""
    if world == 1:
        return batches
    n_even = len(batches) - len(batches) % world
    mine = batches[rank:n_even:world]
    rest = [i for b in batches[n_even:] for i in b]
    if rest:
        share = rest[rank::world]
        if share:
            mine = mine + [share]
        else:  # fewer leftover examples than ranks: reuse one so all ranks step together
            mine = mine + [rest[:1]]
    return mine


def collate(enc: Encoded, batch: list[int], with_labels: bool = True) -> dict[str, torch.Tensor]:
    """Pad ``batch`` (indices into ``enc``) to its longest member."""
    n = max(len(enc.input_ids[i]) for i in batch)
    ids = torch.full((len(batch), n), enc.pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    tt = torch.zeros((len(batch), n), dtype=torch.long) if enc.token_type_ids else None
    for r, i in enumerate(batch):
        seq = enc.input_ids[i]
        ids[r, : len(seq)] = torch.tensor(seq)
        mask[r, : len(seq)] = 1
        if tt is not None:
            tt[r, : len(seq)] = torch.tensor(enc.token_type_ids[i])
    out = {"input_ids": ids, "attention_mask": mask, "index": torch.tensor(batch)}
    if tt is not None:
        out["token_type_ids"] = tt
    for name, values in enc.extras.items():
        vals = [values[i] for i in batch]
        floats = any(isinstance(v, float) for v in vals)
        out[name] = torch.tensor(vals, dtype=torch.float if floats else torch.long)
    if with_labels and any(enc.labels[i] is not None for i in batch):
        # unlabelled rows (e.g. augmented text for KD) get -100 (classes) or NaN (regression)
        lab = [enc.labels[i] for i in batch]
        regression = any(isinstance(x, float) for x in lab)
        fill = float("nan") if regression else IGNORE_INDEX
        out["labels"] = torch.tensor([fill if x is None else x for x in lab],
                                     dtype=torch.float if regression else torch.long)
    return out
