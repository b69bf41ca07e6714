"""Numeric tests of lmdistill.losses against values computed by hand.

Building blocks used throughout (2 classes):
    softmax([0, ln 3]) = [1/4, 3/4]      (e^0 = 1, e^{ln 3} = 3, total 4)
    softmax([0, 0])    = [1/2, 1/2]
    KL([1/4,3/4] ‖ [1/2,1/2]) = 1/4·ln(1/2) + 3/4·ln(3/2) = 3/4·ln 1.5 − 1/4·ln 2  =: KL_A ≈ 0.130812
    KL([1/2,1/2] ‖ [1/4,3/4]) = 1/2·ln 2 + 1/2·ln(2/3) = 1/2·ln(4/3)              =: KL_B ≈ 0.143841
    H([1/4,3/4]) = −(1/4·ln 1/4 + 3/4·ln 3/4) = 1/4·ln 4 + 3/4·ln(4/3)            =: H_A  ≈ 0.562335
"""

import math

import pytest
import torch
from torch import nn

from lmdistill.losses import (
    attention_kl_loss,
    attention_mse_loss,
    cosine_embedding_loss,
    hard_ce_loss,
    hidden_mse_loss,
    kd_mixture,
    mse_regression_kd,
    self_relation_kl,
    soft_cross_entropy,
    soft_kd_loss,
    value_relation_loss,
)
from lmdistill.errors import ConfigError
from lmdistill.schedules import Schedule, ScheduleError, make_schedule

LN3 = math.log(3.0)
KL_A = 0.75 * math.log(1.5) - 0.25 * math.log(2.0)
KL_B = 0.5 * math.log(4.0 / 3.0)
H_A = 0.25 * math.log(4.0) + 0.75 * math.log(4.0 / 3.0)


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


def close(a, b, tol=1e-9):
    a = a.detach() if isinstance(a, torch.Tensor) else a
    b = b.detach() if isinstance(b, torch.Tensor) else b
    return abs(float(a) - float(b)) < tol


def test_hand_constants_agree_with_scipy():
    """The hand-derived constants the loss tests use, checked against an independent library
    (scipy's entropy / relative entropy), not against themselves."""
    from scipy.stats import entropy

    assert close(KL_A, entropy([0.25, 0.75], [0.5, 0.5]), 1e-12)
    assert close(KL_B, entropy([0.5, 0.5], [0.25, 0.75]), 1e-12)
    assert close(H_A, entropy([0.25, 0.75]), 1e-12)


# --------------------------------------------------------------------------- soft KD


def test_soft_kd_tau1_hand_value():
    # teacher [0, ln3] -> [1/4, 3/4]; student [0, 0] -> [1/2, 1/2]; τ² = 1
    loss = soft_kd_loss(t([[0.0, 0.0]]), t([[0.0, LN3]]), temperature=1.0)
    assert close(loss, KL_A)


def test_soft_kd_tau2_scales_by_tau_squared():
    # teacher [0, 2 ln3] / 2 = [0, ln3] -> [1/4, 3/4]; student [0, 0] / 2 -> [1/2, 1/2]
    # KL of the tempered distributions = KL_A, times τ² = 4
    loss = soft_kd_loss(t([[0.0, 0.0]]), t([[0.0, 2 * LN3]]), temperature=2.0)
    assert close(loss, 4 * KL_A)
    # the same teacher logits at τ=1 give a different (unscaled) KL: softmax([0, 2ln3]) = [1/10, 9/10]
    kl1 = 0.1 * math.log(0.1 / 0.5) + 0.9 * math.log(0.9 / 0.5)
    assert close(soft_kd_loss(t([[0.0, 0.0]]), t([[0.0, 2 * LN3]]), temperature=1.0), kl1)


def test_soft_kd_reductions():
    # example 1: KL_A (teacher [0,ln3], student [0,0]); example 2: KL_B (teacher [0,0], student [0,ln3])
    s = t([[0.0, 0.0], [0.0, LN3]])
    tt = t([[0.0, LN3], [0.0, 0.0]])
    assert close(soft_kd_loss(s, tt, reduction="batchmean"), (KL_A + KL_B) / 2)
    assert close(soft_kd_loss(s, tt, reduction="mean"), (KL_A + KL_B) / 4)  # ÷ (B·C) = 4
    assert close(soft_kd_loss(s, tt, reduction="sum"), KL_A + KL_B)
    none = soft_kd_loss(s, tt, reduction="none")
    assert none.shape == (2,) and close(none[0], KL_A) and close(none[1], KL_B)
    with pytest.raises(ValueError, match="reduction"):
        soft_kd_loss(s, tt, reduction="avg")


def test_soft_kd_identical_is_zero():
    x = torch.randn(3, 5, 7, dtype=torch.float64)
    assert close(soft_kd_loss(x, x.clone(), temperature=3.0), 0.0, 1e-12)
    assert close(soft_kd_loss(x[:, 0], x[:, 0].clone()), 0.0, 1e-12)


def test_soft_kd_weights():
    s = t([[0.0, 0.0], [0.0, LN3]])
    tt = t([[0.0, LN3], [0.0, 0.0]])
    # weight 0 example does not count: only KL_A remains
    assert close(soft_kd_loss(s, tt, weights=t([1.0, 0.0])), KL_A)
    # weights normalised by their sum: (3·KL_A + 1·KL_B) / 4
    assert close(soft_kd_loss(s, tt, weights=t([3.0, 1.0])), (3 * KL_A + KL_B) / 4)
    # uniform weights = unweighted, whatever their scale
    assert close(soft_kd_loss(s, tt, weights=t([5.0, 5.0])), (KL_A + KL_B) / 2)
    with pytest.raises(ValueError, match="weights"):
        soft_kd_loss(s, tt, weights=t([1.0, -1.0]))
    with pytest.raises(ValueError, match="shape"):
        soft_kd_loss(s, tt, weights=t([1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="zero"):
        soft_kd_loss(s, tt, weights=t([0.0, 0.0]))
    with pytest.raises(ValueError, match="none"):
        soft_kd_loss(s, tt, weights=t([1.0, 1.0]), reduction="none")


def _token_batch():
    """[B=2, L=3, C=2]; valid tokens (0,0) KL_A, (0,1) 0, (1,0) KL_B; the rest is padding."""
    s = t([[[0.0, 0.0], [1.0, 2.0], [0.0, 0.0]],
           [[0.0, LN3], [0.0, 0.0], [0.0, 0.0]]])
    tt = t([[[0.0, LN3], [1.0, 2.0], [0.0, 0.0]],
            [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    return s, tt, mask


def test_soft_kd_token_level_mask_and_garbage():
    s, tt, mask = _token_batch()
    expected = (KL_A + 0.0 + KL_B) / 3  # mean over the 3 NON-MASKED tokens
    assert close(soft_kd_loss(s, tt, mask=mask), expected)
    # per-token mean differs from a per-example mean: ((KL_A+0)/2 + KL_B/1)/2
    assert not close(soft_kd_loss(s, tt, mask=mask), ((KL_A + 0) / 2 + KL_B) / 2, 1e-3)
    # "mean" = per element = batchmean / C
    assert close(soft_kd_loss(s, tt, mask=mask, reduction="mean"), expected / 2)
    # garbage (huge, inf, nan) in padded positions changes neither loss nor gradients
    s2, t2 = s.clone(), tt.clone()
    s2[0, 2] = t([1e4, -1e4]); t2[0, 2] = t([float("nan"), 3.0])
    s2[1, 1] = t([float("inf"), 0.0]); t2[1, 2] = t([-1e30, 1e30])
    s2.requires_grad_(True)
    loss = soft_kd_loss(s2, t2, mask=mask)
    assert close(loss, expected)
    loss.backward()
    assert torch.isfinite(s2.grad).all()
    assert (s2.grad[~mask.bool()] == 0).all()
    # no mask = every token counts: 6 tokens, pads are KL 0 here except none -> (KL_A + KL_B) / 6
    assert close(soft_kd_loss(s, tt), (KL_A + KL_B) / 6)
    none = soft_kd_loss(s, tt, mask=mask, reduction="none")
    assert none.shape == (2, 3) and close(none[1, 0], KL_B) and none[0, 2] == 0


def test_soft_kd_token_level_weights():
    s, tt, mask = _token_batch()
    # each token carries its example's weight: weight 0 on example 1 leaves tokens (0,0),(0,1)
    assert close(soft_kd_loss(s, tt, mask=mask, weights=t([1.0, 0.0])), KL_A / 2)
    # Σ w·ℓ / Σ w·n = (1·(KL_A + 0) + 2·KL_B) / (1·2 + 2·1)
    assert close(soft_kd_loss(s, tt, mask=mask, weights=t([1.0, 2.0])), (KL_A + 2 * KL_B) / 4)


def test_soft_kd_teacher_probs():
    s = t([[0.0, 0.0]])
    assert close(soft_kd_loss(s, teacher_probs=t([[0.25, 0.75]])), KL_A)
    # τ applies to the student only, the mixture is used as is; τ² = 4 still applies
    assert close(soft_kd_loss(s, teacher_probs=t([[0.25, 0.75]]), temperature=2.0), 4 * KL_A)
    # mixture of two teachers at τ: 1/2·[1/4,3/4] + 1/2·[3/4,1/4] = [1/2,1/2] -> KL to uniform student = 0
    mix = 0.5 * torch.softmax(t([[0.0, LN3]]), -1) + 0.5 * torch.softmax(t([[LN3, 0.0]]), -1)
    assert close(soft_kd_loss(s, teacher_probs=mix), 0.0, 1e-12)
    # a zero-probability class is fine (0·log 0 = 0): KL([0,1] ‖ [1/2,1/2]) = ln 2
    assert close(soft_kd_loss(s, teacher_probs=t([[0.0, 1.0]])), math.log(2))
    with pytest.raises(ValueError, match="exactly one"):
        soft_kd_loss(s, t([[0.0, 0.0]]), teacher_probs=t([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="exactly one"):
        soft_kd_loss(s)


def test_soft_kd_validation():
    with pytest.raises(ValueError, match="shape"):
        soft_kd_loss(t([[0.0, 0.0]]), t([[0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="temperature"):
        soft_kd_loss(t([[0.0, 0.0]]), t([[0.0, 0.0]]), temperature=0.0)
    with pytest.raises(ValueError, match="mask"):
        soft_kd_loss(t([[0.0, 0.0]]), t([[0.0, 0.0]]), mask=torch.ones(1, 2))
    with pytest.raises(ValueError, match=r"mask must have shape \[B, L\]"):
        soft_kd_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), mask=torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"\[B, C\] or \[B, L, C\]"):
        soft_kd_loss(torch.zeros(4), torch.zeros(4))


def test_soft_kd_gradcheck():
    s = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    tt = torch.randn(2, 3, 4, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert torch.autograd.gradcheck(lambda x: soft_kd_loss(x, tt, temperature=2.0, mask=mask), (s,))


def test_soft_cross_entropy():
    s, tt = t([[0.0, 0.0]]), t([[0.0, 2 * LN3]])
    # τ=2: p_T = [1/4, 3/4], p_S uniform: −Σ p_T log p_S = ln 2; times τ² = 4
    ce = soft_cross_entropy(s, tt, temperature=2.0)
    assert close(ce, 4 * math.log(2))
    # soft CE = KL + τ²·H(p_T): 4·(KL_A + H_A) = 4·ln 2
    assert close(ce, soft_kd_loss(s, tt, temperature=2.0) + 4 * H_A)
    assert close(KL_A + H_A, math.log(2))
    # teacher_probs path and identical inputs (= τ²·H, not 0)
    assert close(soft_cross_entropy(s, teacher_probs=t([[0.25, 0.75]])), math.log(2))
    assert close(soft_cross_entropy(t([[0.0, LN3]]), t([[0.0, LN3]])), H_A)
    # token level with garbage padding
    s3, t3, mask = _token_batch()
    s3[0, 2] = t([float("nan"), 1e9])
    kl = soft_kd_loss(s3, t3, mask=mask)
    # entropies of the 3 valid teacher tokens: H([1/4,3/4]) = H_A, H(softmax([1,2])), H([1/2,1/2]) = ln 2
    h = t([H_A, 0.0, 0.0])
    p = torch.softmax(t([1.0, 2.0]), -1)
    h[1] = -(p * p.log()).sum()
    h[2] = math.log(2)
    assert close(soft_cross_entropy(s3, t3, mask=mask), kl + h.mean())


# --------------------------------------------------------------------------- hard CE, mixture, regression


def test_hard_ce():
    logits = t([[0.0, LN3], [0.0, LN3]])
    # −ln(3/4) and −ln(1/4) = ln 4
    assert close(hard_ce_loss(logits[:1], torch.tensor([1])), -math.log(0.75))
    assert close(hard_ce_loss(logits, torch.tensor([1, 0])), (-math.log(0.75) + math.log(4)) / 2)
    assert close(hard_ce_loss(logits, torch.tensor([1, 0]), weights=t([1.0, 0.0])), -math.log(0.75))
    # ignore_index: the ignored row (with garbage) does not count
    bad = t([[0.0, LN3], [float("nan"), 1e9]]).requires_grad_(True)
    loss = hard_ce_loss(bad, torch.tensor([1, -100]))
    assert close(loss, -math.log(0.75))
    loss.backward()
    assert torch.isfinite(bad.grad).all()
    # all ignored -> 0, not nan
    assert hard_ce_loss(logits, torch.tensor([-100, -100])) == 0
    # token level
    tok = t([[[0.0, LN3], [0.0, 0.0]]])
    assert close(hard_ce_loss(tok, torch.tensor([[0, 1]])), (math.log(4) + math.log(2)) / 2)
    with pytest.raises(ValueError, match="labels"):
        hard_ce_loss(logits, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="shape"):
        hard_ce_loss(logits, torch.tensor([1]))


def test_kd_mixture():
    # (1 − 1/4)·4 + 1/4·8 = 3 + 2 = 5
    assert kd_mixture(4.0, 8.0, 0.25) == 5.0
    assert close(kd_mixture(t(4.0), t(8.0), 0.0), 4.0)
    assert close(kd_mixture(t(4.0), t(8.0), 1.0), 8.0)
    with pytest.raises(ValueError, match="alpha"):
        kd_mixture(1.0, 1.0, 1.5)


def test_mse_regression_kd():
    # (1² + 2²) / 2 = 2.5
    assert close(mse_regression_kd(t([1.0, 2.0]), t([0.0, 0.0])), 2.5)
    assert close(mse_regression_kd(t([1.0, 2.0]), t([0.0, 0.0]), weights=t([1.0, 0.0])), 1.0)
    # [B, K]: example 1 mean(1, 9) = 5, example 2 mean(0, 4) = 2 -> 3.5
    assert close(mse_regression_kd(t([[1.0, 3.0], [0.0, 2.0]]), torch.zeros(2, 2, dtype=torch.float64)), 3.5)
    with pytest.raises(ValueError, match="same shape"):
        mse_regression_kd(t([1.0]), t([1.0, 2.0]))


# --------------------------------------------------------------------------- hidden states


def test_hidden_mse_mask_hand_value():
    # B=1, L=3, D=2, last token padded. Valid squared diffs: (1−0)²+(2−0)² + (0−1)²+(0−1)² = 7
    # / (2 valid tokens · 2 dims) = 1.75
    s = t([[[1.0, 2.0], [0.0, 0.0], [float("nan"), 1e9]]]).requires_grad_(True)
    tt = t([[[0.0, 0.0], [1.0, 1.0], [5.0, float("inf")]]])
    mask = torch.tensor([[1, 1, 0]])
    loss = hidden_mse_loss(s, tt, mask)
    assert close(loss, 1.75)
    loss.backward()
    # d/ds = 2(s − t) / 4 on valid entries, 0 on padding
    assert torch.allclose(s.grad, t([[[0.5, 1.0], [-0.5, -0.5], [0.0, 0.0]]]))
    # no mask: all three tokens count (garbage-free input): (7 + 0) / (3·2)
    s0 = t([[[1.0, 2.0], [0.0, 0.0], [3.0, 3.0]]])
    t0 = t([[[0.0, 0.0], [1.0, 1.0], [3.0, 3.0]]])
    assert close(hidden_mse_loss(s0, t0), 7 / 6)
    # per-example weights: example 2 has weight 0
    s2 = torch.cat([s0, s0 + 100])
    t2 = torch.cat([t0, t0])
    assert close(hidden_mse_loss(s2, t2, weights=t([1.0, 0.0])), 7 / 6)


def test_hidden_mse_width_mismatch_needs_proj():
    s, tt = torch.zeros(1, 2, 4), torch.zeros(1, 2, 8)
    with pytest.raises(ValueError, match=r"width 4 != teacher width 8.*nn.Linear\(4, 8\)"):
        hidden_mse_loss(s, tt)
    with pytest.raises(ValueError, match="proj maps"):
        hidden_mse_loss(s, tt, proj=nn.Linear(4, 6))
    assert hidden_mse_loss(s, tt, proj=nn.Linear(4, 8, bias=False)) == 0


def test_hidden_mse_projection_hand_value():
    # proj(x) = 2x (Ds = Dt = 1 forced projection): s = [1, 3], t = [2, 2] -> (2−2)² + (6−2)² = 16, / 2 = 8
    proj = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        proj.weight.fill_(2.0)
    s, tt = t([[[1.0], [3.0]]]), t([[[2.0], [2.0]]])
    loss = hidden_mse_loss(s, tt, torch.tensor([[1, 1]]), proj=proj)
    assert close(loss, 8.0)
    loss.backward()
    # dL/dw = mean(2(w·s − t)·s) = (0 + 2·4·3)/2 = 12
    assert close(proj.weight.grad, 12.0)


class _FunctionalLinear(nn.Module):
    """Linear layer whose weight/bias are plain input tensors (so gradcheck can vary them)."""

    def __init__(self, weight, bias):
        super().__init__()
        self.w, self.b = weight, bias

    def forward(self, x):
        return torch.nn.functional.linear(x, self.w, self.b)


def test_hidden_mse_projection_gradcheck():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    tt = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    tt[1, 2] = 1e6  # garbage in a padded position
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    w = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)  # nn.Linear(2 -> 3)
    b = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)

    def f(weight, bias, student):
        return hidden_mse_loss(student, tt, mask, proj=_FunctionalLinear(weight, bias), weights=t([1.0, 2.0]))

    assert torch.autograd.gradcheck(f, (w, b, s))
    # and the real nn.Linear receives gradients through the loss
    proj = nn.Linear(2, 3).double()
    hidden_mse_loss(s, tt, mask, proj=proj).backward()
    assert proj.weight.grad is not None and torch.isfinite(proj.weight.grad).all()


def test_cosine_embedding_loss():
    # orthogonal -> 1, parallel (any scale) -> 0, opposite -> 2, 45° -> 1 − 1/√2
    s = t([[1.0, 0.0], [1.0, 2.0], [1.0, 0.0], [1.0, 0.0]])
    tt = t([[0.0, 3.0], [2.0, 4.0], [-1.0, 0.0], [1.0, 1.0]])
    none_expected = [1.0, 0.0, 2.0, 1 - 1 / math.sqrt(2)]
    for i, e in enumerate(none_expected):
        assert close(cosine_embedding_loss(s[i : i + 1], tt[i : i + 1]), e, 1e-7)
    assert close(cosine_embedding_loss(s, tt), sum(none_expected) / 4, 1e-7)
    # token level with mask: tokens [orthogonal, parallel, pad]
    st = t([[[1.0, 0.0], [1.0, 1.0], [float("nan"), 0.0]]])
    tk = t([[[0.0, 1.0], [2.0, 2.0], [1.0, 0.0]]])
    assert close(cosine_embedding_loss(st, tk, torch.tensor([[1, 1, 0]])), 0.5, 1e-7)
    with pytest.raises(ValueError, match="proj"):
        cosine_embedding_loss(torch.ones(2, 3), torch.ones(2, 4))
    assert close(cosine_embedding_loss(torch.ones(2, 3), torch.ones(2, 4), proj=lambda x: torch.ones(2, 4)), 0.0, 1e-7)


# --------------------------------------------------------------------------- attention


def _attn_case():
    # 1 head, 2 tokens. teacher rows [1/4,3/4], [1/2,1/2]; student rows uniform.
    tt = t([[[[0.25, 0.75], [0.5, 0.5]]]])
    s = t([[[[0.5, 0.5], [0.5, 0.5]]]])
    return s, tt


def test_attention_kl_hand_value():
    s, tt = _attn_case()
    # row 0: KL_A; row 1: 0 -> mean over 2 rows
    assert close(attention_kl_loss(s, tt), KL_A / 2)
    assert close(attention_kl_loss(tt, tt.clone()), 0.0, 1e-12)


def test_attention_kl_mask():
    s, tt = _attn_case()
    # pad to L=3: padded key column has 0 prob (as HF returns), padded query row is garbage
    s3 = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    t3 = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    s3[..., :2, :2], t3[..., :2, :2] = s, tt
    s3[..., 2, :] = t([float("nan"), 7.0, -1.0])
    t3[..., 2, :] = t([0.9, 0.1, float("inf")])
    mask = torch.tensor([[1, 1, 0]])
    s3.requires_grad_(True)
    loss = attention_kl_loss(s3, t3, mask)
    assert close(loss, KL_A / 2)
    loss.backward()
    assert torch.isfinite(s3.grad).all()
    # second example with weight 0 does not count; identical, no-pad example with weight 1 averages in
    s_b = torch.cat([s3.detach(), t3.clone()])
    t_b = torch.cat([t3, t3.clone()])
    s_b[1, ..., 2, :] = 0
    t_b[1, ..., 2, :] = 0
    m_b = torch.tensor([[1, 1, 0], [1, 1, 0]])
    assert close(attention_kl_loss(s_b, t_b, m_b, weights=t([1.0, 0.0])), KL_A / 2)
    assert close(attention_kl_loss(s_b, t_b, m_b), KL_A / 4)  # 4 valid rows, one with KL_A


def test_attention_head_mismatch():
    with pytest.raises(ValueError, match="heads.*value_relation_loss"):
        attention_kl_loss(torch.rand(1, 2, 3, 3), torch.rand(1, 4, 3, 3))
    with pytest.raises(ValueError, match="heads"):
        attention_mse_loss(torch.rand(1, 2, 3, 3), torch.rand(1, 4, 3, 3))
    with pytest.raises(ValueError, match=r"\[B, H, L, L\]"):
        attention_kl_loss(torch.rand(1, 2, 3, 4), torch.rand(1, 2, 3, 4))


def test_attention_mse_hand_value():
    s, tt = _attn_case()
    # row 0: ((1/4−1/2)² + (3/4−1/2)²)/2 keys = (1/16 + 1/16)/2 = 1/16; row 1: 0 -> mean 1/32
    assert close(attention_mse_loss(s, tt), 1 / 32)
    s3 = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    t3 = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    s3[..., :2, :2], t3[..., :2, :2] = s, tt
    s3[..., 2, :] = 123.0
    assert close(attention_mse_loss(s3, t3, torch.tensor([[1, 1, 0]])), 1 / 32)
    assert close(attention_mse_loss(tt, tt), 0.0)


# --------------------------------------------------------------------------- relations (MiniLM)


def test_value_relation_identical_is_zero():
    v = torch.randn(2, 5, 8, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    for heads in (1, 2, 4):
        assert close(value_relation_loss(v, v.clone(), mask, heads), 0.0, 1e-12)


def test_value_relation_hand_value():
    # 1 head, L=2, d=1. relation scores = x_i·x_j / sqrt(1)
    # teacher x = [0, 0] -> scores all 0 -> rows [1/2, 1/2]
    # student x = [sqrt(ln3), 0] -> row 0 scores [ln3, 0] -> [3/4, 1/4]; row 1 [0, 0] -> [1/2, 1/2]
    # KL row 0 = 1/2·ln((1/2)/(3/4)) + 1/2·ln((1/2)/(1/4)) = 1/2·ln(4/3) = KL_B; row 1 = 0 -> mean KL_B/2
    s = t([[[math.sqrt(LN3)], [0.0]]])
    tt = t([[[0.0], [0.0]]])
    assert close(value_relation_loss(s, tt, None, 1), KL_B / 2)
    # padded third token (garbage) with mask gives the same value
    s3 = t([[[math.sqrt(LN3)], [0.0], [50.0]]])
    t3 = t([[[0.0], [0.0], [float("nan")]]]).requires_grad_(True)
    loss = value_relation_loss(s3, t3, torch.tensor([[1, 1, 0]]), 1)
    assert close(loss, KL_B / 2)
    loss.backward()
    assert torch.isfinite(t3.grad).all()
    # with pad but no mask it would differ
    assert not close(value_relation_loss(s3, torch.zeros_like(t3), None, 1), KL_B / 2, 1e-3)


def test_value_relation_different_widths():
    # Ds = 4, Dt = 8, 2 relation heads: student head size 2, teacher head size 4
    g = torch.Generator().manual_seed(1)
    s = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    tt = torch.randn(2, 3, 8, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    loss = value_relation_loss(s, tt, mask, 2)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert torch.isfinite(s.grad).all()
    # each side uses its OWN head size: teacher head = [x_head, 0, 0]·2^(1/4) gives scores
    # √2·(x·y)/√4 = (x·y)/√2, exactly the student's (x·y)/√2 -> loss 0
    heads = s.detach().view(2, 3, 2, 2)
    t_heads = torch.cat([heads, torch.zeros_like(heads)], -1) * 2 ** 0.25
    assert close(value_relation_loss(s.detach(), t_heads.reshape(2, 3, 8), mask, 2), 0.0, 1e-12)
    with pytest.raises(ValueError, match="divisible"):
        value_relation_loss(torch.zeros(1, 2, 5), torch.zeros(1, 2, 8), None, 2)
    with pytest.raises(ValueError, match="batch/sequence"):
        value_relation_loss(torch.zeros(1, 2, 4), torch.zeros(1, 3, 8), None, 2)


def test_self_relation_gradcheck_and_all_pad_example():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    tt = torch.randn(2, 3, 6, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])  # second example is all padding
    assert torch.autograd.gradcheck(lambda x: self_relation_kl(x, tt, mask, 2), (s,))
    only_first = self_relation_kl(s[:1], tt[:1], mask[:1], 2)
    assert close(self_relation_kl(s, tt, mask, 2), only_first, 1e-12)


# --------------------------------------------------------------------------- schedules


def test_linear_schedule():
    sched = Schedule.linear(4.0, 1.0, total_steps=10)
    assert sched(0) == 4.0
    assert sched(5) == 2.5  # 4 + (1 − 4)·5/10
    assert sched(10) == 1.0
    assert sched(25) == 1.0  # clamps beyond the end
    assert sched(-3) == 4.0


def test_cosine_and_constant_schedule():
    sched = Schedule.cosine(4.0, 1.0, total_steps=10)
    assert sched(0) == 4.0 and close(sched(5), 2.5, 1e-12) and close(sched(10), 1.0, 1e-12) and close(sched(99), 1.0, 1e-12)
    assert Schedule.constant(2.0)(12345) == 2.0


def test_make_schedule():
    assert make_schedule({"kind": "linear", "start": 4, "end": 1}, total_steps=10)(5) == 2.5
    assert make_schedule({"kind": "linear", "start": 4, "end": 1, "total_steps": 2})(1) == 2.5
    assert make_schedule("linear:4:1", total_steps=10) == Schedule.linear(4, 1, 10)
    assert make_schedule("cosine:4:1", total_steps=10)(10) == 1.0
    assert make_schedule(3)(7) == 3.0
    assert make_schedule("2.5")(7) == 2.5
    assert make_schedule("constant:2")(0) == 2.0
    assert make_schedule({"kind": "constant", "value": 0.5})(9) == 0.5
    s = Schedule.constant(1.0)
    assert make_schedule(s) is s
    with pytest.raises(ValueError, match="total_steps"):
        make_schedule({"kind": "linear", "start": 4, "end": 1})
    with pytest.raises(ScheduleError, match="unknown"):
        make_schedule({"kind": "linear", "start": 4, "end": 1, "stop": 3}, total_steps=5)
    with pytest.raises(ConfigError, match="kind"):
        make_schedule({"kind": "exp", "start": 4, "end": 1}, total_steps=5)
    with pytest.raises(ValueError, match="bad schedule"):
        make_schedule("linear:4", total_steps=5)
    with pytest.raises(ValueError, match="number"):
        make_schedule("fast")
