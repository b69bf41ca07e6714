"""Input checks and reductions every loss shares (the conventions of :mod:`lmdistill.losses`)."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor

Reduction = Literal["batchmean", "mean", "sum", "none"]
_REDUCTIONS = ("batchmean", "mean", "sum", "none")


# --------------------------------------------------------------------------- helpers


def _shape(t: Tensor) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def _check_tensor(x: Any, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def _check_temperature(temperature: float) -> float:
    if isinstance(temperature, Tensor):
        temperature = float(temperature)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a number, got {temperature!r}")
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    return float(temperature)


def _check_reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _check_mask(mask: Tensor | None, batch: int, length: int, name: str = "mask") -> Tensor | None:
    """Validate an attention mask [B, L] and return it as bool (True = real token)."""
    if mask is None:
        return None
    mask = _check_tensor(mask, name)
    if tuple(mask.shape) != (batch, length):
        raise ValueError(
            f"{name} must have shape [B, L] = [{batch}, {length}] (1 = token, 0 = padding), "
            f"got {_shape(mask)}"
        )
    return mask if mask.dtype == torch.bool else mask != 0


def _check_weights(weights: Any, batch: int, like: Tensor) -> Tensor | None:
    """Validate per-example weights [B] (non-negative, finite) and cast them like ``like``."""
    if weights is None:
        return None
    w = torch.as_tensor(weights, device=like.device)
    if w.dim() != 1 or w.shape[0] != batch:
        raise ValueError(f"weights must have shape [B] = [{batch}], got {_shape(w)}")
    w = w.to(like.dtype if like.is_floating_point() else torch.get_default_dtype())
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be finite and >= 0, got {w.tolist()}")
    return w


def _reduce(
    per_item: Tensor,
    valid: Tensor | None,
    weights: Tensor | None,
    reduction: str,
    elems_per_item: int = 1,
) -> Tensor:
    """Reduce per-item losses [B, ...] (already 0 where invalid).

    batchmean: Σ w_b·ℓ / Σ w_b·valid ; mean: the same ÷ elems_per_item ;
    sum: Σ ℓ ; none: ℓ. With no valid item at all, batchmean/mean return 0.
    """
    if reduction == "none":
        if weights is not None:
            raise ValueError("weights cannot be combined with reduction='none'; apply them to the per-item losses yourself")
        return per_item
    if reduction == "sum":
        if weights is not None:
            raise ValueError("weights are normalised by their sum, use reduction='batchmean' or 'mean' with weights")
        return per_item.sum()
    batch = per_item.shape[0]
    extra = [1] * (per_item.dim() - 1)
    if valid is None:
        valid = torch.ones_like(per_item, dtype=torch.bool)
    item_w = valid.to(per_item.dtype)
    if weights is not None:
        item_w = item_w * weights.to(per_item.dtype).view(batch, *extra)
    denom = item_w.sum()
    if weights is not None and valid.any() and not bool(denom > 0):
        raise ValueError("weights sum to zero over the examples that have valid items")
    if reduction == "mean":
        denom = denom * elems_per_item
    num = (per_item * item_w).sum()
    return num / denom.clamp_min(torch.finfo(per_item.dtype).tiny)


def _prepare_distributions(
    student_logits: Tensor,
    teacher_logits: Tensor | None,
    teacher_probs: Tensor | None,
    mask: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate [B, C] / [B, L, C] inputs; zero padded positions. Returns (s, teacher, valid)."""
    s = _check_tensor(student_logits, "student_logits")
    if (teacher_logits is None) == (teacher_probs is None):
        raise ValueError("give exactly one of teacher_logits or teacher_probs")
    t = _check_tensor(teacher_logits if teacher_logits is not None else teacher_probs,
                      "teacher_logits" if teacher_logits is not None else "teacher_probs")
    if s.dim() not in (2, 3):
        raise ValueError(f"student_logits must be [B, C] or [B, L, C], got {_shape(s)}")
    if t.shape != s.shape:
        raise ValueError(f"teacher shape {_shape(t)} must equal student_logits shape {_shape(s)}")
    if s.dim() == 2:
        if mask is not None:
            raise ValueError("mask is only for token-level [B, L, C] logits; got [B, C] logits with a mask")
        return s, t, None
    valid = _check_mask(mask, s.shape[0], s.shape[1])
    if valid is None:
        return s, t, None
    keep = valid.unsqueeze(-1)
    s = torch.where(keep, s, torch.zeros((), dtype=s.dtype, device=s.device))
    fill = 0.0 if teacher_logits is not None else 1.0 / t.shape[-1]
    t = torch.where(keep, t, torch.full((), fill, dtype=t.dtype, device=t.device))
    return s, t, valid
