"""Several teachers: per-example (per-token) prediction weighting and the mixture."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import ConfigError
from ..names import STRATEGIES
from .signals import TeacherOut, TeacherSignal


# ------------------------------------------------------------------ several teachers


def check_strategy(strategy: str, num_teachers: int, regression: bool = False,
                   fixed: Sequence[float] | None = None) -> None:
    """Refuse, with a one-line reason, a weighting that cannot apply (rather than silently
    becoming another): unknown names, ``confidence``/``entropy`` for regression (a scalar
    prediction has no confidence), ``fixed`` without K non-negative weights with a positive sum."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown teacher weighting '{strategy}'; choose from "
                          f"{', '.join(STRATEGIES)}")
    if regression and strategy in ("confidence", "entropy"):
        raise ConfigError(f"teacher weighting '{strategy}' needs class probabilities; a "
                          "regression task has none: use uniform, gold or fixed")
    if strategy == "fixed":
        if fixed is None or len(fixed) != num_teachers:
            raise ConfigError(f"strategy 'fixed' needs {num_teachers} weights, got {fixed}")
        if any(not math.isfinite(x) or x < 0 for x in fixed) or not sum(fixed) > 0:
            raise ConfigError(f"strategy 'fixed' needs finite weights >= 0 with a positive "
                              f"sum, got {list(fixed)}")


def teacher_weights(logits: torch.Tensor, strategy: str, labels: torch.Tensor | None = None,
                    fixed: Sequence[float] | None = None, regression: bool = False,
                    sharpness: float = 1.0) -> torch.Tensor:
    """Weights [*, K] of K teachers' predictions ``logits`` [K, *, C], one weight vector per
    prediction, each summing to 1 ("prediction weighting"). ``*`` is the batch ([B]: one per
    example) or batch × tokens ([B, L]: one per token, for masked-LM KD); ``labels`` has shape
    ``*`` (−100 = no gold label: augmented text, unmasked tokens).

    - ``uniform``:    1/K.
    - ``confidence``: ∝ max_c p_k(c)  (p at temperature 1).
    - ``entropy``:    ∝ exp(−H(p_k))  (sharper teachers count more).
    - ``gold``:       ∝ p_k(gold label); predictions without a gold label (label −100, or a
                      batch with no labels at all) fall back to ``confidence``. Regression:
                      ∝ exp(−(ŷ_k − y)²), rows without a target (NaN) uniform.
    - ``fixed``:      the given weights, normalised, the same for every prediction.
    ``sharpness`` raises the unnormalised scores to that power before normalising. Weights are
    on the device of ``logits``.
    """
    check_strategy(strategy, logits.shape[0], regression, fixed)
    K, lead = logits.shape[0], tuple(logits.shape[1:-1])
    flat = logits.reshape(K, -1, logits.shape[-1])  # [K, N, C]
    N, dev = flat.shape[1], logits.device
    if labels is not None:
        labels = labels.to(dev).reshape(-1)
        if labels.shape[0] != N:
            raise ConfigError(f"labels of shape {tuple(labels.shape)} do not match the "
                              f"teachers' predictions {tuple(logits.shape)}")
    if strategy == "uniform":
        return torch.full(lead + (K,), 1.0 / K, device=dev)
    if strategy == "fixed":
        w = torch.tensor(fixed, dtype=torch.float32, device=dev)
        return (w / w.sum()).expand(*lead, K).clone()
    # every score is kept as its logarithm and normalised by a softmax: score**sharpness
    # underflows float32 (0/0) where all teachers give the gold token a tiny probability
    if regression:
        pred = flat[..., 0].T  # [N, K]
        if labels is None:
            return torch.full(lead + (K,), 1.0 / K, device=dev)
        y = labels.float()[:, None]
        ok = torch.isfinite(y)
        log_score = torch.where(ok, -(pred - torch.where(ok, y, 0.0)) ** 2,
                                torch.zeros_like(pred))
    else:
        logp = flat.float().log_softmax(-1)  # [K, N, C]
        log_conf = logp.max(-1).values.T     # [N, K]
        if strategy == "confidence":
            log_score = log_conf
        elif strategy == "entropy":
            # log exp(−H) = Σ p log p; classes at −inf (outside a cached top-k) add 0
            plogp = logp.exp() * logp
            log_score = torch.where(torch.isfinite(logp), plogp, 0.0).sum(-1).T
        else:  # gold
            if labels is None:
                log_score = log_conf
            else:
                has = labels >= 0
                gold = logp.gather(-1, labels.clamp(min=0)[None, :, None].expand(K, N, 1))
                log_score = torch.where(has[:, None], gold[..., 0].T, log_conf)
    w = (log_score * sharpness).softmax(-1)
    return w.reshape(lead + (K,))


def mix(logits: torch.Tensor, weights: torch.Tensor, temperature: float = 1.0,
        regression: bool = False) -> torch.Tensor:
    """The weighted mixture Σ_k w_k softmax(t_k / τ): ``logits`` [K, *, C] and ``weights``
    [*, K] → probabilities [*, C] (``*`` = [B] or [B, L]); for regression the weighted mean
    prediction [B, 1]."""
    w = weights.movedim(-1, 0)[..., None]  # [K, *, 1]
    if regression:
        return (w * logits).sum(0)
    return (w * (logits / temperature).softmax(-1)).sum(0)


class MultiTeacher(TeacherSignal):
    def __init__(self, teachers: list[TeacherSignal], strategy: str = "uniform",
                 fixed: Sequence[float] | None = None, regression: bool = False,
                 sharpness: float = 1.0):
        check_strategy(strategy, len(teachers), regression, fixed)
        if any(t.needs.any for t in teachers):
            raise ConfigError("intermediate-layer KD from several teachers is not supported; "
                              "use logit KD with multiple teachers")
        self.teachers, self.strategy, self.fixed = teachers, strategy, fixed
        self.regression, self.sharpness = regression, sharpness
        self.num_teachers = len(teachers)

    def devices(self) -> list[str]:
        return [d for t in self.teachers for d in t.devices()]

    def __call__(self, batch: dict) -> TeacherOut:
        dev = batch["input_ids"].device  # cached/file/callable teachers answer from the CPU
        logits = torch.stack([t(batch).logits.float().to(dev) for t in self.teachers])
        w = teacher_weights(logits, self.strategy, batch.get("labels"), self.fixed,
                            self.regression, self.sharpness)
        return TeacherOut(logits=logits, weights=w)
