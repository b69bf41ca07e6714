"""Intermediate-layer losses: hidden states (MSE, cosine), attention (KL, MSE), MiniLM's
self-attention relations."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import _check_mask, _check_tensor, _check_weights, _reduce, _shape


# --------------------------------------------------------------------------- hidden-state losses


def _prepare_hidden(
    student: Tensor, teacher: Tensor, mask: Tensor | None, proj: nn.Module | None, what: str
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate [B, D] / [B, L, D] pairs, zero padded tokens, apply the projection."""
    s = _check_tensor(student, f"student_{what}")
    t = _check_tensor(teacher, f"teacher_{what}")
    if s.dim() not in (2, 3) or t.dim() != s.dim():
        raise ValueError(f"student_{what} {_shape(s)} and teacher_{what} {_shape(t)} must both be [B, L, D] (or both [B, D])")
    if s.shape[:-1] != t.shape[:-1]:
        raise ValueError(f"student_{what} {_shape(s)} and teacher_{what} {_shape(t)} differ in batch/sequence dims")
    valid = None
    if s.dim() == 3:
        valid = _check_mask(mask, s.shape[0], s.shape[1])
    elif mask is not None:
        raise ValueError(f"mask is only for [B, L, D] inputs; got [B, D] {what}")
    if valid is not None:
        keep = valid.unsqueeze(-1)
        s = torch.where(keep, s, torch.zeros((), dtype=s.dtype, device=s.device))
        t = torch.where(keep, t, torch.zeros((), dtype=t.dtype, device=t.device))
    d_s, d_t = s.shape[-1], t.shape[-1]
    if proj is not None:
        s = proj(s)
        if s.shape[-1] != d_t:
            raise ValueError(f"proj maps student width {d_s} to {s.shape[-1]}, but the teacher width is {d_t}")
    elif d_s != d_t:
        raise ValueError(
            f"student width {d_s} != teacher width {d_t}: pass proj=nn.Linear({d_s}, {d_t}) "
            "(see lmdistill.mapping.Projections)"
        )
    return s, t, valid


def hidden_mse_loss(
    student_hidden: Tensor,
    teacher_hidden: Tensor,
    mask: Tensor | None = None,
    proj: nn.Module | None = None,
    weights: Tensor | None = None,
) -> Tensor:
    """Hidden-state MSE (TinyBERT / FitNets): ``mean((proj(h_S) − h_T)²)``.

    Shapes: ``student_hidden`` [B, L, Ds], ``teacher_hidden`` [B, L, Dt], ``mask``
    [B, L] (None = all tokens); [B, D] pooled vectors are accepted without mask.
    If Ds ≠ Dt a projection ``proj`` (nn.Linear(Ds, Dt), trained with the student)
    MUST be given; it is applied to the student side.

    Reduction: squared differences summed over valid tokens and the Dt dims,
    divided by ``n_valid_tokens · Dt`` (per-example ``weights`` [B] weight each
    example's tokens, normalised by their sum). No scaling.
    """
    s, t, valid = _prepare_hidden(student_hidden, teacher_hidden, mask, proj, "hidden")
    w = _check_weights(weights, s.shape[0], s)
    per_item = ((s - t) ** 2).sum(-1)
    if valid is not None:
        per_item = torch.where(valid, per_item, torch.zeros((), dtype=per_item.dtype, device=per_item.device))
    return _reduce(per_item, valid, w, "mean", t.shape[-1])


def cosine_embedding_loss(
    student_h: Tensor,
    teacher_h: Tensor,
    mask: Tensor | None = None,
    proj: nn.Module | None = None,
    weights: Tensor | None = None,
    eps: float = 1e-8,
) -> Tensor:
    """Cosine embedding loss (DistilBERT hidden alignment): ``1 − cos(proj(h_S), h_T)``.

    One value per token for [B, L, D] inputs (mean over tokens with ``mask`` = 1)
    or per example for [B, D] inputs (mean over examples), optionally weighted by
    ``weights`` [B]. Range [0, 2]: parallel 0, orthogonal 1, opposite 2. Width
    handling and ``proj`` as in :func:`hidden_mse_loss`. No scaling.
    """
    s, t, valid = _prepare_hidden(student_h, teacher_h, mask, proj, "h")
    w = _check_weights(weights, s.shape[0], s)
    per_item = 1.0 - F.cosine_similarity(s, t, dim=-1, eps=eps)
    if valid is not None:
        per_item = torch.where(valid, per_item, torch.zeros((), dtype=per_item.dtype, device=per_item.device))
    return _reduce(per_item, valid, w, "batchmean")


# --------------------------------------------------------------------------- attention losses


def _prepare_attention(
    student_attn: Tensor, teacher_attn: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Validate [B, H, L, L] pairs. Returns (s, t, valid_rows [B,1,L], valid_elems [B,1,L,L])."""
    s = _check_tensor(student_attn, "student_attn")
    t = _check_tensor(teacher_attn, "teacher_attn")
    for name, a in (("student_attn", s), ("teacher_attn", t)):
        if a.dim() != 4 or a.shape[-1] != a.shape[-2]:
            raise ValueError(f"{name} must be [B, H, L, L] attention probabilities, got {_shape(a)}")
    if s.shape[1] != t.shape[1]:
        raise ValueError(
            f"student has {s.shape[1]} attention heads, teacher {t.shape[1]}: attention transfer "
            "(TinyBERT) needs equal head counts; use value_relation_loss / self_relation_kl (MiniLM) instead"
        )
    if s.shape != t.shape:
        raise ValueError(f"student_attn {_shape(s)} and teacher_attn {_shape(t)} must have the same shape")
    valid = _check_mask(mask, s.shape[0], s.shape[-1])
    if valid is None:
        return s, t, None, None
    rows = valid[:, None, :]                                  # [B, 1, L] query rows
    elems = valid[:, None, :, None] & valid[:, None, None, :]  # [B, 1, L, L] query & key valid
    zero = torch.zeros((), dtype=s.dtype, device=s.device)
    s = torch.where(elems, s, zero)
    t = torch.where(elems, t, torch.zeros((), dtype=t.dtype, device=t.device))
    return s, t, rows, elems


def _rows_reduce(per_row: Tensor, rows: Tensor | None, weights: Any) -> Tensor:
    """Mean of per-row values [B, H, L] over valid query rows, heads and batch."""
    w = _check_weights(weights, per_row.shape[0], per_row)
    valid = None
    if rows is not None:
        valid = rows.expand_as(per_row)
        per_row = torch.where(valid, per_row, torch.zeros((), dtype=per_row.dtype, device=per_row.device))
    return _reduce(per_row, valid, w, "batchmean")


def attention_kl_loss(
    student_attn: Tensor,
    teacher_attn: Tensor,
    mask: Tensor | None = None,
    weights: Tensor | None = None,
    eps: float = 1e-12,
) -> Tensor:
    """Attention-distribution KD: ``KL(A_T ‖ A_S)`` per query row.

    Inputs are attention PROBABILITIES [B, H, L, L] (post-softmax, as returned
    by HF models with ``output_attentions=True``). Per query row q::

        ℓ_q = Σ_k A_T[q,k] · (log A_T[q,k] − log max(A_S[q,k], eps))

    summed over valid keys (padded key columns hold ~0 probability and are
    dropped), then averaged over valid query rows, heads and batch (``weights``
    [B] normalised by their sum). No scaling. Head counts must be equal (TinyBERT
    style); for different head counts use :func:`value_relation_loss`.
    """
    s, t, rows, elems = _prepare_attention(student_attn, teacher_attn, mask)
    eps = max(eps, torch.finfo(s.dtype).tiny)
    kl = torch.xlogy(t, t) - t * torch.log(s.clamp_min(eps))
    if elems is not None:
        kl = torch.where(elems, kl, torch.zeros((), dtype=kl.dtype, device=kl.device))
    return _rows_reduce(kl.sum(-1), rows, weights)


def attention_mse_loss(
    student_attn: Tensor,
    teacher_attn: Tensor,
    mask: Tensor | None = None,
    weights: Tensor | None = None,
) -> Tensor:
    """TinyBERT-style attention MSE: ``mean((A_S − A_T)²)``.

    TinyBERT matches the unnormalised attention scores; HF only returns
    probabilities, so this is computed on PROBABILITIES [B, H, L, L]. Per query
    row: mean over valid keys of the squared difference; then averaged over
    valid query rows, heads and batch (``weights`` [B] normalised by their sum).
    Without a mask this is the plain MSE over the L×L matrices averaged over
    heads. No scaling. Head counts must be equal.
    """
    s, t, rows, elems = _prepare_attention(student_attn, teacher_attn, mask)
    sq = (s - t) ** 2
    if elems is None:
        per_row = sq.mean(-1)
    else:
        sq = torch.where(elems, sq, torch.zeros((), dtype=sq.dtype, device=sq.device))
        n_keys = rows.sum(-1, keepdim=True).clamp_min(1).to(sq.dtype)  # [B, 1, 1]
        per_row = sq.sum(-1) / n_keys
    return _rows_reduce(per_row, rows, weights)


def _relation_log_probs(x: Tensor, n_heads: int, key_valid: Tensor | None, name: str) -> Tensor:
    """log softmax(X_r X_rᵀ / sqrt(d_r)) per relation head r: [B, L, D] -> [B, R, L, L]."""
    batch, length, width = x.shape
    if width % n_heads:
        raise ValueError(f"{name} width {width} is not divisible by num_relation_heads={n_heads}")
    d_head = width // n_heads
    xh = x.view(batch, length, n_heads, d_head).transpose(1, 2)  # [B, R, L, d]
    scores = xh @ xh.transpose(-1, -2) / math.sqrt(d_head)
    if key_valid is not None:
        scores = scores.masked_fill(~key_valid, float("-inf"))
    return F.log_softmax(scores, dim=-1)


def self_relation_kl(
    student_x: Tensor,
    teacher_x: Tensor,
    mask: Tensor | None,
    num_relation_heads: int,
    *,
    weights: Tensor | None = None,
) -> Tensor:
    """Self-relation KD (MiniLM / MiniLMv2): ``KL(R_T ‖ R_S)`` per query row.

    ``student_x`` [B, L, Ds] and ``teacher_x`` [B, L, Dt] (values, queries or
    keys, concatenated over attention heads) are each split into R =
    ``num_relation_heads`` heads of their OWN size d = D/R, so the widths may
    differ. Per head::

        R = softmax(X_r X_rᵀ / sqrt(d))      (padded keys masked to −inf)
        ℓ_q = Σ_k R_T[q,k] · (log R_T[q,k] − log R_S[q,k])

    then averaged over valid query rows, relation heads and batch (``weights``
    [B] normalised by their sum). No scaling. Used for value-value relations
    (:func:`value_relation_loss`) and also query-query / key-key relations.
    """
    s = _check_tensor(student_x, "student_x")
    t = _check_tensor(teacher_x, "teacher_x")
    if s.dim() != 3 or t.dim() != 3:
        raise ValueError(f"student_x {_shape(s)} and teacher_x {_shape(t)} must both be [B, L, D]")
    if s.shape[:2] != t.shape[:2]:
        raise ValueError(f"student_x {_shape(s)} and teacher_x {_shape(t)} differ in batch/sequence dims")
    if isinstance(num_relation_heads, bool) or not isinstance(num_relation_heads, int) or num_relation_heads < 1:
        raise ValueError(f"num_relation_heads must be a positive int, got {num_relation_heads!r}")
    valid = _check_mask(mask, s.shape[0], s.shape[1])
    key_valid = rows = None
    if valid is not None:
        s = torch.where(valid.unsqueeze(-1), s, torch.zeros((), dtype=s.dtype, device=s.device))
        t = torch.where(valid.unsqueeze(-1), t, torch.zeros((), dtype=t.dtype, device=t.device))
        # an all-padding example keeps all keys so its (ignored) rows stay finite
        keys = valid | ~valid.any(-1, keepdim=True)
        key_valid = keys[:, None, None, :]  # [B, 1, 1, L]
        rows = valid[:, None, :]            # [B, 1, L]
    log_r_s = _relation_log_probs(s, num_relation_heads, key_valid, "student_x")
    log_r_t = _relation_log_probs(t, num_relation_heads, key_valid, "teacher_x")
    r_t = log_r_t.exp()
    if key_valid is not None:
        # -inf - -inf would be nan (and poison gradients): zero masked keys before the product
        zero = torch.zeros((), dtype=log_r_s.dtype, device=log_r_s.device)
        log_r_s = torch.where(key_valid, log_r_s, zero)
        log_r_t = torch.where(key_valid, log_r_t, zero)
    kl = (r_t * (log_r_t - log_r_s)).sum(-1)  # [B, R, L]
    return _rows_reduce(kl, rows, weights)


def value_relation_loss(
    student_values: Tensor,
    teacher_values: Tensor,
    mask: Tensor | None,
    num_relation_heads: int,
    *,
    weights: Tensor | None = None,
) -> Tensor:
    """MiniLM value-relation loss: :func:`self_relation_kl` on the attention values.

    ``student_values`` [B, L, Ds], ``teacher_values`` [B, L, Dt]: the value
    projections (all heads concatenated) of the matched layers. Each side is
    split into ``num_relation_heads`` heads of its own size, so Ds ≠ Dt and
    different attention-head counts are fine (only divisibility is required).
    KL(teacher ‖ student) per query row, mean over valid rows, heads and batch.
    """
    return self_relation_kl(student_values, teacher_values, mask, num_relation_heads, weights=weights)
