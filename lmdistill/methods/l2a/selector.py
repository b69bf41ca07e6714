"""L2A's reinforced selector: a logistic policy over features of each generated candidate
that keeps (1) or drops (0) it.

    π(keep | f) = σ(w·f + b)

Two ways to train it:

- ``l2a.reward=influence`` (the default, issue 29): every candidate gets its own reward before
  the round acts, an influence estimate of what one step on it would do to the student's loss
  on the held-out target rows (:func:`influence_rewards`: the alignment of the candidate's KD
  gradient with the held-out gradient, at the student's classifier, in closed form). Keeping i
  earns r_i and dropping it earns 0, both known, so the policy's expected reward Σ_i π_i·r_i
  is maximised directly (:meth:`Selector.fit_rewards`, a few gradient steps per round on the
  round's candidates, standardised rewards, an L2 penalty), then the round acts. The policy
  acts on what it learned from round 1 on, and 64 candidates a round are 64 rewards, not one.
- ``l2a.reward=metric`` (the paper's): one reward a round, the change of the student's
  held-out target metric after it was distilled on the kept candidates, with REINFORCE
  (:meth:`Selector.update`): ∇J ≈ (R − b̄)·Σ_i ∇ log π(a_i | f_i), b̄ a moving average of the
  rewards that starts at 0 (no change), so the first round's update is not zeroed.

Features (:func:`candidate_features`) are the teacher's confidence and margin, the
student–teacher disagreement (KL), the similarity to the target domain and the origin,
standardised with running statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FEATURES = ("teacher_confidence", "teacher_margin", "student_teacher_kl", "target_similarity",
            "from_source")


def candidate_features(teacher_logits: torch.Tensor, student_logits: torch.Tensor,
                       embeddings: torch.Tensor, target_centroid: torch.Tensor,
                       from_source: torch.Tensor) -> torch.Tensor:
    """[N, 5] in the order of :data:`FEATURES`."""
    pt = teacher_logits.float().softmax(-1)
    top2 = pt.topk(min(2, pt.shape[-1]), -1).values
    conf = top2[:, 0]
    margin = top2[:, 0] - (top2[:, 1] if top2.shape[1] > 1 else 0)
    kl = (pt * (pt.clamp_min(1e-12).log() - student_logits.float().log_softmax(-1))).sum(-1)
    sim = F.cosine_similarity(embeddings.float(), target_centroid.float()[None], dim=-1)
    return torch.stack([conf, margin, kl, sim, from_source.float()], -1)


def influence_rewards(h_cand: torch.Tensor, ps_cand: torch.Tensor, pt_cand: torch.Tensor,
                      h_held: torch.Tensor, ps_held: torch.Tensor, y_held: torch.Tensor
                      ) -> torch.Tensor:
    """[N]: for each candidate, −⟨∇L_held, ∇ℓ_i⟩ at the student's classifier (weight and bias):
    the first-order decrease of the held-out CE L_held that a small step on the candidate's
    soft-label loss ℓ_i = CE(p_T,i, p_S,i) would bring (positive: it helps).

    For logits z = W·h + b both gradients are closed-form: ∂ℓ_i/∂(W, b) = (p_S,i − p_T,i)
    ⊗ (h_i, 1), ∂L_held/∂(W, b) = mean_j (p_S,j − y_j) ⊗ (h_j, 1), so
    r_i = −(p_S,i − p_T,i)ᵀ (G_W·h_i + g_b) with G_W, g_b the held-out mean gradients.
    ``h_*`` [n, D] the classifier's inputs, ``ps_*``/``pt_cand`` [n, C] probabilities,
    ``y_held`` [n] class ids."""
    onehot = torch.nn.functional.one_hot(y_held.long(), ps_held.shape[-1]).to(ps_held)
    d_held = ps_held - onehot                                   # [m, C]
    g_w = d_held.T @ h_held / len(h_held)                       # [C, D]
    g_b = d_held.mean(0)                                        # [C]
    return -((ps_cand - pt_cand) * (h_cand @ g_w.T + g_b)).sum(-1)


class Selector(torch.nn.Module):
    def __init__(self, n_features: int = len(FEATURES), lr: float = 0.1,
                 baseline_decay: float = 0.8, seed: int = 0, optimizer: str = "adam"):
        super().__init__()
        self.linear = torch.nn.Linear(n_features, 1)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)  # keep with probability ½ at first
        self.opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(
            self.parameters(), lr=lr)
        self.baseline: float = 0.0  # "no change": the first round's advantage is its reward
        self.decay = baseline_decay
        self.gen = torch.Generator().manual_seed(seed)
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("var", torch.ones(n_features))
        self.seen = 0

    def _norm(self, f: torch.Tensor, update: bool) -> torch.Tensor:
        if update:
            n = f.shape[0]
            tot = self.seen + n
            m = f.mean(0)
            self.var = (self.var * self.seen + f.var(0, unbiased=False) * n
                        + (m - self.mean) ** 2 * self.seen * n / tot) / tot
            self.mean = (self.mean * self.seen + m * n) / tot
            self.seen = tot
        return (f - self.mean) / self.var.sqrt().clamp_min(1e-6)

    def probs(self, feats: torch.Tensor, update_stats: bool = False) -> torch.Tensor:
        return torch.sigmoid(self.linear(self._norm(feats, update_stats))).squeeze(-1)

    @torch.no_grad()
    def act(self, feats: torch.Tensor, update_stats: bool = True) -> torch.Tensor:
        """Sampled keep (1) / drop (0) decisions for the candidates (and the running feature
        statistics updated, unless :meth:`fit_rewards` already did for these)."""
        p = self.probs(feats, update_stats=update_stats)
        return torch.bernoulli(p, generator=self.gen)

    def fit_rewards(self, feats: torch.Tensor, rewards: torch.Tensor, steps: int = 50,
                    l2: float = 0.01) -> dict:
        """Per-candidate rewards (keeping i earns ``rewards[i]``, dropping it 0): ``steps``
        gradient steps on −mean_i π_i·r̂_i + l2·‖w‖², r̂ the rewards over their standard
        deviation (the learning rate does not depend on their scale). The feature statistics
        are updated first, so the policy acts on these candidates with what it learned."""
        self._norm(feats, update=True)
        r = rewards.float() / rewards.float().std().clamp_min(1e-12)
        for _ in range(steps):
            p = self.probs(feats)
            loss = -(p * r).mean() + l2 * self.linear.weight.pow(2).sum()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        with torch.no_grad():
            p = self.probs(feats)
        helps = rewards > 0
        return {"expected_reward": float((p * rewards).mean()), "steps": steps,
                "keep_prob_helpful": float(p[helps].mean()) if helps.any() else None,
                "keep_prob_harmful": float(p[~helps].mean()) if (~helps).any() else None,
                "helpful": int(helps.sum()),
                "weights": [round(float(w), 4) for w in self.linear.weight.detach()[0]],
                "bias": round(float(self.linear.bias.detach()[0]), 4)}

    def update(self, feats: torch.Tensor, actions: torch.Tensor, reward: float) -> dict:
        """One REINFORCE step for a round; returns the advantage and the loss."""
        adv = reward - self.baseline
        p = self.probs(feats)
        logp = actions * torch.log(p.clamp_min(1e-8)) + (1 - actions) * torch.log(
            (1 - p).clamp_min(1e-8))
        loss = -adv * logp.sum()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.baseline = self.decay * self.baseline + (1 - self.decay) * reward
        return {"advantage": adv, "loss": float(loss.detach()), "baseline": self.baseline,
                "kept": float(actions.mean())}
