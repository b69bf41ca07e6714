"""Output-level losses: soft-label KD, soft and hard cross-entropy, their mixture, regression KD."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .checks import (Reduction, _check_reduction, _check_temperature, _check_tensor,
                     _check_weights, _prepare_distributions, _reduce, _shape)


# --------------------------------------------------------------------------- output-level losses


def soft_kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor | None = None,
    temperature: float = 1.0,
    weights: Tensor | None = None,
    reduction: Reduction = "batchmean",
    *,
    mask: Tensor | None = None,
    teacher_probs: Tensor | None = None,
) -> Tensor:
    """Soft-target KD: ``τ² · KL(softmax(t/τ) ‖ softmax(s/τ))``.

    Math, per item (example, or token for token-level logits)::

        p_T = softmax(t / τ),  log p_S = log_softmax(s / τ)
        ℓ   = τ² · Σ_c p_T,c · (log p_T,c − log p_S,c)

    Scaling: τ² (Hinton), so the gradient magnitude is temperature-independent.

    Reduction: "batchmean" (default) = sum over classes, mean over examples, or
    over NON-MASKED tokens for [B, L, C] logits; weighted by ``weights`` [B]
    normalised by their sum when given. See the module table for the others.

    Args:
        student_logits: [B, C] or [B, L, C].
        teacher_logits: same shape as the student's. Exclusive with ``teacher_probs``.
        temperature: τ > 0.
        weights: optional per-example weights [B].
        mask: attention mask [B, L] for token-level logits (None = every token counts).
        teacher_probs: a ready teacher distribution (e.g. a multi-teacher mixture),
            same shape, used AS IS: τ is then applied to the student only, so the
            mixture is expected to have been computed at temperature τ already
            (mix ``softmax(t_k/τ)``). The τ² factor still applies.
    """
    tau = _check_temperature(temperature)
    _check_reduction(reduction)
    s, t, valid = _prepare_distributions(student_logits, teacher_logits, teacher_probs, mask)
    w = _check_weights(weights, s.shape[0], s)
    log_p_s = F.log_softmax(s / tau, dim=-1)
    if teacher_probs is None:
        log_p_t = F.log_softmax(t / tau, dim=-1)
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    else:
        kl = (torch.xlogy(t, t) - t * log_p_s).sum(-1)
    kl = kl * (tau * tau)
    if valid is not None:
        kl = torch.where(valid, kl, torch.zeros((), dtype=kl.dtype, device=kl.device))
    return _reduce(kl, valid, w, reduction, s.shape[-1])


def soft_cross_entropy(
    student_logits: Tensor,
    teacher_logits: Tensor | None = None,
    temperature: float = 1.0,
    weights: Tensor | None = None,
    reduction: Reduction = "batchmean",
    *,
    mask: Tensor | None = None,
    teacher_probs: Tensor | None = None,
) -> Tensor:
    """Soft cross-entropy: ``τ² · (−Σ_c p_T,c · log p_S,c)``.

    Equals ``soft_kd_loss + τ²·H(p_T)``; the extra term does not depend on the
    student, so the student gradients are those of ``soft_kd_loss``. Unlike KL it
    is not 0 when student == teacher (it is τ²·H(p_T)).

    Scaling τ², reductions, ``mask``, ``weights`` and ``teacher_probs`` exactly as
    in :func:`soft_kd_loss`.
    """
    tau = _check_temperature(temperature)
    _check_reduction(reduction)
    s, t, valid = _prepare_distributions(student_logits, teacher_logits, teacher_probs, mask)
    w = _check_weights(weights, s.shape[0], s)
    log_p_s = F.log_softmax(s / tau, dim=-1)
    p_t = F.softmax(t / tau, dim=-1) if teacher_probs is None else t
    ce = -(p_t * log_p_s).sum(-1) * (tau * tau)
    if valid is not None:
        ce = torch.where(valid, ce, torch.zeros((), dtype=ce.dtype, device=ce.device))
    return _reduce(ce, valid, w, reduction, s.shape[-1])


def hard_ce_loss(
    logits: Tensor,
    labels: Tensor,
    weights: Tensor | None = None,
    ignore_index: int = -100,
) -> Tensor:
    """Cross-entropy with the gold labels: ``−log softmax(s)_y``.

    No temperature, no scaling. ``logits`` [B, C] with ``labels`` [B], or
    token-level [B, L, C] with ``labels`` [B, L]. Reduction: mean over the items
    whose label is not ``ignore_index`` (0 if there is none, not nan), weighted
    by per-example ``weights`` [B] normalised by their sum.
    """
    logits = _check_tensor(logits, "logits")
    labels = _check_tensor(labels, "labels")
    if logits.dim() not in (2, 3):
        raise ValueError(f"logits must be [B, C] or [B, L, C], got {_shape(logits)}")
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"labels shape {_shape(labels)} must equal logits shape without classes {list(logits.shape[:-1])}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
    n_classes = logits.shape[-1]
    valid = labels != ignore_index
    bad = valid & ((labels < 0) | (labels >= n_classes))
    if bad.any():
        raise ValueError(f"labels must be in [0, {n_classes}) or ignore_index={ignore_index}, got {sorted(set(labels[bad].tolist()))}")
    w = _check_weights(weights, logits.shape[0], logits)
    safe_logits = torch.where(valid.unsqueeze(-1), logits, torch.zeros((), dtype=logits.dtype, device=logits.device))
    safe_labels = torch.where(valid, labels, torch.zeros_like(labels))
    ce = -F.log_softmax(safe_logits, dim=-1).gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1)
    ce = torch.where(valid, ce, torch.zeros((), dtype=ce.dtype, device=ce.device))
    return _reduce(ce, valid, w, "batchmean")


def kd_mixture(hard: Tensor | float, soft: Tensor | float, alpha: float) -> Tensor | float:
    """Mix the hard-label and KD losses: ``(1 − α)·hard + α·soft``.

    ``alpha`` is the weight of the KD (soft) term, in [0, 1]: α = 0 is plain
    fine-tuning, α = 1 pure distillation. Since soft KD is τ²-scaled, the same α
    balances the two terms at any temperature.
    """
    if isinstance(alpha, Tensor):
        alpha = float(alpha)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha (the KD weight) must be a number in [0, 1], got {alpha!r}")
    return (1.0 - alpha) * hard + alpha * soft


def mse_regression_kd(
    student_pred: Tensor,
    teacher_pred: Tensor,
    weights: Tensor | None = None,
) -> Tensor:
    """Regression KD: ``mean((s − t)²)``.

    Predictions [B] or [B, K]. Mean over outputs, then over examples (weighted
    by ``weights`` [B] normalised by their sum). No temperature, no scaling.
    """
    s = _check_tensor(student_pred, "student_pred")
    t = _check_tensor(teacher_pred, "teacher_pred")
    if s.shape != t.shape:
        raise ValueError(f"student_pred {_shape(s)} and teacher_pred {_shape(t)} must have the same shape")
    if s.dim() not in (1, 2):
        raise ValueError(f"predictions must be [B] or [B, K], got {_shape(s)}")
    w = _check_weights(weights, s.shape[0], s)
    sq = (s - t) ** 2
    per_example = sq if sq.dim() == 1 else sq.mean(-1)
    return _reduce(per_example, None, w, "batchmean")
