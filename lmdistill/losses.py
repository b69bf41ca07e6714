"""Reference distillation losses: one pure-torch implementation per loss.

Every method in lmdistill computes its loss through these functions, so the
conventions below hold toolkit-wide. Toolkits disagree mostly on the T² factor
and on the reduction, so both are fixed here, once.

Conventions
===========

=======================  ====================================================================
Topic                    lmdistill convention
=======================  ====================================================================
Soft-target scaling      Soft KD and soft CE are multiplied by τ² (Hinton et al., 2015), so
                         gradient magnitudes do not shrink as 1/τ² when τ grows and the
                         KD weight α means the same thing at every temperature.
KL direction             KL(p_T ‖ p_S): teacher is the target distribution, student the model.
Reduction "batchmean"    (default) sum over classes, mean over *items*. An item is an example
                         for [B, C] inputs and a non-masked token for [B, L, C] inputs.
Reduction "mean"         mean over every element (items × classes), torch's ``"mean"``;
                         equals "batchmean" / C.
Reduction "sum"          sum over everything (items and classes).
Reduction "none"         one value per item ([B] or [B, L]; masked tokens are 0).
Masks                    ``mask`` is the attention mask [B, L]: 1 (or True) = real token,
                         0 = padding. Token-level losses average over NON-MASKED tokens only;
                         padded positions may hold any value, even inf/nan: they change
                         neither the loss nor the gradients (inputs are zeroed there first).
Per-example ``weights``  shape [B], non-negative, normalised by their sum over the items that
                         count: loss = Σ_b w_b·Σ_items ℓ / Σ_b w_b·n_items(b). Uniform weights
                         give the unweighted loss back; a weight-0 example does not count.
                         Only valid with "batchmean" / "mean" (used by multi-teacher KD and
                         Meta-KD instance weighting).
Hard/soft mixture        ``kd_mixture``: (1 − α)·hard + α·soft; α is the weight of the KD term.
Hidden-state MSE         mean over valid tokens AND hidden dims (of the teacher width Dt).
Attention / relations    probabilities; KL per query row summed over keys, mean over valid
                         query rows, heads and batch.
Teacher gradients        nothing is detached here: run the teacher under ``torch.no_grad()``.
=======================  ====================================================================

For comparison (so numbers can be matched against papers): DistilBERT uses
``KLDivLoss(reduction="batchmean") · T²`` (same as ours); TinyBERT's prediction
loss is soft cross-entropy averaged over *all elements* (÷C) with no T²;
TextBrewer's ``kd_ce_loss`` is soft cross-entropy averaged over examples with no
T² factor. Soft CE and KL differ only by τ²·H(p_T), which is constant in the
student, so their gradients w.r.t. the student are identical.

Schedules of temperatures and loss weights live in :mod:`lmdistill.schedules`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn


__all__ = [
    "Reduction",
    "soft_kd_loss",
    "soft_cross_entropy",
    "hard_ce_loss",
    "kd_mixture",
    "mse_regression_kd",
    "hidden_mse_loss",
    "cosine_embedding_loss",
    "attention_kl_loss",
    "attention_mse_loss",
    "self_relation_kl",
    "value_relation_loss",
]

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
