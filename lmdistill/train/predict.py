"""Batched inference over an encoded split, sharded across processes and gathered back.

Used by evaluation during training, by ``lmdistill evaluate`` and by teacher caching.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..data.collate import Encoded, collate, shard_batches, sorted_batches


def iter_batches(enc: Encoded, batch_size: int, device=None, progress: bool = False,
                 desc: str = "predict", rank: int = 0, world: int = 1, collate_fn=None):
    """``(indices, batch)`` over ``enc`` in length-sorted batches (least padding), this rank's
    share, on ``device``, with a progress bar on rank 0 if asked: the inference loop of
    :func:`predict` and of teacher caching."""
    batches = shard_batches(sorted_batches(enc.lengths, batch_size), rank, world)
    it = batches
    if progress and rank == 0:
        from tqdm.auto import tqdm

        it = tqdm(batches, desc=desc, leave=False, dynamic_ncols=True)
    cfn = collate_fn or (lambda e, b: collate(e, b, with_labels=False))
    for b in it:
        batch = cfn(enc, b)
        if device is not None:
            batch = {k: v.to(device) for k, v in batch.items()}
        yield b, batch


@torch.inference_mode()
def predict(fn: Callable[[dict], torch.Tensor], enc: Encoded, batch_size: int = 128,
            accelerator=None, progress: bool = False, desc: str = "predict",
            device: torch.device | None = None, token_level: bool | None = None,
            collate_fn=None) -> np.ndarray:
    """``fn(batch) -> [B, ...]`` over all of ``enc``; returns an array in ``enc`` order.

    Token-level outputs (``[B, L, ...]`` with L the batch's padded length, e.g. masked-LM
    logits; detected for ≥ 3-D outputs, or forced with ``token_level=True``) come back as an
    object array of one ``[L_i, ...]`` array per example, trimmed to its own length: batches
    are padded to different lengths, so they cannot be stacked.
    Batches go to ``device`` (default: the accelerator's), where the model must be;
    ``collate_fn`` replaces the default collate (e.g. an objective's masking collate).
    With several processes each rank predicts a disjoint share of the (length-sorted) batches
    and the results are gathered, so every example is predicted exactly once.
    """
    rank = accelerator.process_index if accelerator else 0
    world = accelerator.num_processes if accelerator else 1
    if device is None:
        device = accelerator.device if accelerator else torch.device("cpu")
    idx_out, val_out = [], []
    per_token = token_level
    for b, batch in iter_batches(enc, batch_size, device, progress, desc, rank, world,
                                 collate_fn):
        out = fn(batch).float().cpu()
        if per_token is None:
            per_token = out.ndim >= 3 and out.shape[1] == batch["input_ids"].shape[1]
        idx_out.extend(b)
        if per_token:
            lengths = enc.lengths
            val_out.extend(out[r, :lengths[i]].numpy() for r, i in enumerate(b))
        else:
            val_out.append(out)
    if per_token:
        vals = np.empty(len(val_out), dtype=object)
        vals[:] = val_out
    else:
        vals = torch.cat(val_out).numpy() if val_out else np.zeros((0,))
    if world > 1:
        from accelerate.utils import gather_object

        parts = gather_object([(idx_out, vals)])
        idx_out = [i for p in parts for i in p[0]]
        vals = np.concatenate([p[1] for p in parts if len(p[0])])
    shape = (len(enc),) if per_token else (len(enc),) + vals.shape[1:]
    result = np.empty(shape, dtype=object if per_token else vals.dtype)
    seen = np.zeros(len(enc), dtype=bool)
    for pos, i in enumerate(idx_out):
        result[i] = vals[pos]
        seen[i] = True
    assert seen.all(), "some examples were not predicted"
    return result


def to_predictions(logits: np.ndarray, regression: bool) -> np.ndarray:
    return logits.reshape(-1) if regression else logits.argmax(-1)


@torch.inference_mode()
def pooled_hidden_states(model, enc: Encoded, batch_size: int = 64, progress: bool = False,
                         layers: list[int] | None = None) -> torch.Tensor:
    """[N, J, H]: the masked mean over tokens of the model's hidden states (all J = layers + 1,
    or the ``layers`` given; −1 = last), one row per example of ``enc``, on the CPU."""
    dev = next(model.parameters()).device
    model.eval()
    out: torch.Tensor | None = None
    batches = sorted_batches(enc.lengths, batch_size)
    it = batches
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(batches, desc="hidden states", unit="batch")
    for b in it:
        x = collate(enc, b, with_labels=False)
        kw = {k: x[k].to(dev) for k in ("input_ids", "attention_mask", "token_type_ids")
              if k in x}
        hs = model(**kw, output_hidden_states=True).hidden_states
        if layers is not None:
            hs = [hs[i] for i in layers]
        m = kw["attention_mask"][..., None].float()
        pooled = torch.stack([(h.float() * m).sum(1) / m.sum(1).clamp(min=1) for h in hs], 1)
        if out is None:
            out = torch.zeros(len(enc), pooled.shape[1], pooled.shape[2])
        out[torch.tensor(b)] = pooled.cpu()
    return out
