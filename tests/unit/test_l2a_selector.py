"""L2A's selector: the REINFORCE update's sign, learning to keep good samples where "good" is
known, and the candidate features by hand."""

from __future__ import annotations

import math

import pytest
import torch

from lmdistill.methods.l2a.selector import Selector, candidate_features


def test_reinforce_gradient_has_the_right_sign():
    """A positive advantage makes the taken actions more likely, a negative one less."""
    x = torch.tensor([[1.0, 0.0], [0.5, 1.0], [-1.0, 2.0]])
    a = torch.tensor([1.0, 0.0, 1.0])

    def logp(sel):
        p = sel.probs(x).detach()
        return float((a * p.log() + (1 - a) * (1 - p).log()).sum())

    for baseline, sign in ((0.0, +1), (2.0, -1)):  # reward 1: advantage +1, then -1
        sel = Selector(2, lr=0.01, optimizer="sgd")
        with torch.no_grad():
            sel.linear.weight.copy_(torch.tensor([[0.3, -0.2]]))
        sel.probs(x, update_stats=True)
        sel.baseline = baseline
        before = logp(sel)
        out = sel.update(x, a, reward=1.0)
        assert out["advantage"] == pytest.approx(1.0 - baseline)
        assert math.copysign(1, logp(sel) - before) == sign
    # the baseline is a moving average of the rewards that starts at 0 ("no change"), so the
    # first round's update is not zeroed (issue 29: it used to start at the first reward)
    sel = Selector(2)
    assert sel.update(x, a, 1.0)["advantage"] == pytest.approx(1.0)
    assert sel.baseline == pytest.approx(0.2)
    sel.update(x, a, 0.0)
    assert sel.baseline == pytest.approx(0.16)


def test_selector_learns_to_keep_good_samples():
    g = torch.Generator().manual_seed(0)
    sel = Selector(3, lr=0.05, seed=1)
    for _ in range(300):
        good = torch.rand(32, generator=g) < 0.5
        feats = torch.stack([good.float() * 2 - 1 + 0.3 * torch.randn(32, generator=g),
                             torch.randn(32, generator=g), torch.randn(32, generator=g)], -1)
        a = sel.act(feats)
        reward = float((a * (good.float() * 2 - 1)).sum() / 32)  # kept good minus kept bad
        sel.update(feats, a, reward)
    test_good = torch.tensor([[1.0, 0.0, 0.0]])
    test_bad = torch.tensor([[-1.0, 0.0, 0.0]])
    assert float(sel.probs(test_good).detach()) > 0.8
    assert float(sel.probs(test_bad).detach()) < 0.2


def test_candidate_features_by_hand():
    t = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]]))
    s = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.3, 0.5]]))
    emb = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    f = candidate_features(t, s, emb, torch.tensor([1.0, 0.0]), torch.tensor([0, 1]))
    assert f[:, 0].tolist() == pytest.approx([0.7, 0.4])
    assert f[:, 1].tolist() == pytest.approx([0.5, 0.05])
    kl1 = 0.4 * math.log(2) + 0.35 * math.log(0.35 / 0.3) + 0.25 * math.log(0.5)
    assert f[:, 2].tolist() == pytest.approx([0.0, kl1], abs=1e-6)
    assert f[:, 3].tolist() == pytest.approx([1.0, 1 / math.sqrt(2)])
    assert f[:, 4].tolist() == [0.0, 1.0]


def test_selector_state_carries_over_between_rounds(tmp_path):
    from lmdistill.methods.l2a.run import _load_selector, _save_selector

    x = torch.tensor([[1.0, 0.0], [0.5, 1.0], [-1.0, 2.0]])
    a = torch.tensor([1.0, 0.0, 1.0])
    straight = Selector(2, lr=0.1)
    straight.probs(x, update_stats=True)
    for r in (1.0, 0.0, 2.0):
        straight.update(x, a, r)
    first = Selector(2, lr=0.1)
    first.probs(x, update_stats=True)
    first.update(x, a, 1.0)
    _save_selector(first, tmp_path / "s.json")
    resumed = Selector(2, lr=0.1)  # the next round: a fresh object, loaded
    _load_selector(resumed, tmp_path / "s.json")
    for r in (0.0, 2.0):
        resumed.update(x, a, r)
    torch.testing.assert_close(resumed.probs(x).detach(), straight.probs(x).detach())


def test_influence_rewards_are_the_gradient_alignment_at_the_classifier():
    """Against autograd: r_i = −⟨∂L_held/∂(W, b), ∂ℓ_i/∂(W, b)⟩ for logits W·h + b, ℓ_i the soft
    cross-entropy to the teacher, L_held the mean CE on the held-out rows."""
    from lmdistill.methods.l2a.selector import influence_rewards

    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(4, 3)
    h_c, h_r = torch.randn(5, 4, generator=g), torch.randn(6, 4, generator=g)
    pt = torch.randn(5, 3, generator=g).softmax(-1)
    y = torch.tensor([0, 1, 2, 1, 0, 2])

    def grads(loss):
        head.zero_grad()
        loss.backward()
        return torch.cat([head.weight.grad.flatten(), head.bias.grad]).clone()

    g_held = grads(torch.nn.functional.cross_entropy(head(h_r), y))
    want = torch.stack([-(g_held * grads(-(pt[i] * head(h_c[i]).log_softmax(-1)).sum())).sum()
                        for i in range(5)])
    with torch.no_grad():
        got = influence_rewards(h_c, head(h_c).softmax(-1), pt, h_r, head(h_r).softmax(-1), y)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_selector_learns_from_per_candidate_rewards_at_the_pipelines_budget():
    """Issue 29: at L2A's defaults (3 rounds of 64 candidates, 50 selector steps a round), with
    one noisy reward per candidate and half the pool helpful (feature 0 predicts which), the
    selector prefers the helpful ones from the first round on, and clearly by the last."""
    from lmdistill import config as C

    s = C.L2ASettings()
    g = torch.Generator().manual_seed(0)
    sel = Selector(3, lr=s.selector_lr, seed=1)

    def pool(n):
        good = torch.rand(n, generator=g) < 0.5
        feats = torch.stack([good.float() * 2 - 1 + 0.8 * torch.randn(n, generator=g),
                             torch.randn(n, generator=g), torch.randn(n, generator=g)], -1)
        rewards = (good.float() * 2 - 1) * 0.01 + 0.01 * torch.randn(n, generator=g)
        return good, feats, rewards

    kept_good = []
    for _ in range(s.rounds):
        good, feats, rewards = pool(s.candidates)
        sel.fit_rewards(feats, rewards, s.selector_steps)
        a = sel.act(feats, update_stats=False).bool()
        kept_good.append((a & good).sum() / a.sum().clamp_min(1))
    assert float(kept_good[0]) > 0.65  # the first round already acts on what it learned
    good, feats, _ = pool(2000)
    p = sel.probs(feats).detach()
    assert float(p[good].mean()) > 0.7 and float(p[~good].mean()) < 0.3
    assert float(sel.linear.weight[0, 0]) > 3 * float(sel.linear.weight[0, 1:].abs().max())
