"""Prototype scores: how typical of its own domain and of the other domains an instance is.

    t_i = ½ · [cos(h_i, c_{d_i}) + cos(h_i, mean_{d ≠ d_i} c_d)]

``h_i`` is the mean-pooled last hidden state of an encoder (the pretrained base model, before
any fine-tuning), ``c_d`` the centroid of domain d's instances. Instances that look like
every domain (high t) carry transferable knowledge; Meta-KD weights them up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...errors import ConfigError


def prototype_scores(h: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
    """t [N] from embeddings h [N, H] and domain ids [N] (at least two domains)."""
    ids = sorted(set(domains.tolist()))
    if len(ids) < 2:
        raise ConfigError("prototype scores need instances of at least two domains")
    h = h.float()
    cents = {d: h[domains == d].mean(0) for d in ids}
    own = torch.stack([cents[int(d)] for d in domains])
    others = torch.stack([torch.stack([cents[o] for o in ids if o != int(d)]).mean(0)
                          for d in domains])
    return 0.5 * (F.cosine_similarity(h, own, dim=-1) + F.cosine_similarity(h, others, dim=-1))


def instance_weights(t: torch.Tensor, p_gold: torch.Tensor) -> torch.Tensor:
    """Meta-distillation's per-instance weight (1 + t) · 1 / (1 + exp((1 − p_T(gold))²))."""
    return (1 + t) / (1 + torch.exp((1 - p_gold) ** 2))
