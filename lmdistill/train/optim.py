"""The default optimizer recipe of the one loop: AdamW without weight decay on biases and
norms, warm-up and a linear / constant / cosine schedule."""

from __future__ import annotations

import torch

from ..config import TrainConfig


def param_groups(module_or_named, weight_decay: float):
    """AdamW groups: no weight decay on biases and norms. Takes a module or an iterable of
    ``(name, parameter)`` pairs (a subset of a module's parameters)."""
    named = (module_or_named.named_parameters() if isinstance(module_or_named, torch.nn.Module)
             else module_or_named)
    decay, no_decay = [], []
    for name, p in named:
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(params, cfg: TrainConfig, total_steps: int, lr: float | None = None,
                   weight_decay: float | None = None, schedule: str | None = None,
                   warmup_ratio: float | None = None):
    """The default recipe (AdamW, no decay on biases/norms, warm-up + ``cfg.schedule``) for a
    module or ``(name, param)`` pairs; any of lr / weight decay / schedule / warm-up can be
    overridden. Returns ``(optimizer, scheduler)``."""
    from transformers import get_scheduler

    wd = cfg.weight_decay if weight_decay is None else weight_decay
    opt = torch.optim.AdamW(param_groups(params, wd), lr=cfg.lr if lr is None else lr)
    kind = {"linear": "linear", "constant": "constant_with_warmup",
            "cosine": "cosine"}[schedule or cfg.schedule]
    warm = cfg.warmup_ratio if warmup_ratio is None else warmup_ratio
    sched = get_scheduler(kind, opt, num_warmup_steps=int(warm * total_steps),
                          num_training_steps=total_steps)
    return opt, sched
