"""Batched inference over an encoded split, sharded across processes and gathered back.

Used by evaluation during training, by ``lmdistill evaluate`` and by teacher caching.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..data.collate import Encoded, collate, shard_batches, sorted_batches


@torch.inference_mode()
def predict(fn: Callable[[dict], torch.Tensor], enc: Encoded, batch_size: int = 128,
            accelerator=None, progress: bool = False, desc: str = "predict",
            device: torch.device | None = None) -> np.ndarray:
    """``fn(batch) -> [B, ...]`` over all of ``enc``; returns an array in ``enc`` order.

    Batches go to ``device`` (default: the accelerator's), where the model must be.
    With several processes each rank predicts a disjoint share of the (length-sorted) batches
    and the results are gathered, so every example is predicted exactly once.
    """
    rank = accelerator.process_index if accelerator else 0
    world = accelerator.num_processes if accelerator else 1
    if device is None:
        device = accelerator.device if accelerator else torch.device("cpu")
    batches = shard_batches(sorted_batches(enc.lengths, batch_size), rank, world)
    it = batches
    if progress and rank == 0:
        from tqdm.auto import tqdm

        it = tqdm(batches, desc=desc, leave=False, dynamic_ncols=True)
    idx_out, val_out = [], []
    for b in it:
        batch = {k: v.to(device) for k, v in collate(enc, b, with_labels=False).items()}
        out = fn(batch).float().cpu()
        idx_out.extend(b)
        val_out.append(out)
    vals = torch.cat(val_out).numpy() if val_out else np.zeros((0,))
    if world > 1:
        from accelerate.utils import gather_object

        parts = gather_object([(idx_out, vals)])
        idx_out = [i for p in parts for i in p[0]]
        vals = np.concatenate([p[1] for p in parts if len(p[0])])
    result = np.empty((len(enc),) + vals.shape[1:], dtype=vals.dtype)
    seen = np.zeros(len(enc), dtype=bool)
    for pos, i in enumerate(idx_out):
        result[i] = vals[pos]
        seen[i] = True
    assert seen.all(), "some examples were not predicted"
    return result


def to_predictions(logits: np.ndarray, regression: bool) -> np.ndarray:
    return logits.reshape(-1) if regression else logits.argmax(-1)
