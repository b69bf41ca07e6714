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

from .checks import Reduction
from .layers import (attention_kl_loss, attention_mse_loss, cosine_embedding_loss, hidden_mse_loss,
                     self_relation_kl, value_relation_loss)
from .outputs import (hard_ce_loss, kd_mixture, mse_regression_kd, soft_cross_entropy,
                      soft_kd_loss)

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
