"""L2A's reinforced selector: a logistic policy over features of each generated candidate
that keeps (1) or drops (0) it, trained with REINFORCE and a moving-average baseline.

    π(keep | f) = σ(w·f + b)
    ∇J ≈ (R − b̄) · Σ_i ∇ log π(a_i | f_i)       (R: the round's reward, b̄: the baseline)

The reward of a round is the change of the student's held-out target metric after it was
distilled on the kept candidates; features (:func:`candidate_features`) are the teacher's
confidence and margin, the student–teacher disagreement (KL), the similarity to the target
domain and the origin. Features are standardised with running statistics.
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


class Selector(torch.nn.Module):
    def __init__(self, n_features: int = len(FEATURES), lr: float = 0.1,
                 baseline_decay: float = 0.8, seed: int = 0, optimizer: str = "adam"):
        super().__init__()
        self.linear = torch.nn.Linear(n_features, 1)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)  # keep with probability ½ at first
        self.opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(
            self.parameters(), lr=lr)
        self.baseline: float | None = None
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
    def act(self, feats: torch.Tensor) -> torch.Tensor:
        """Sampled keep (1) / drop (0) decisions for the candidates (and the running feature
        statistics updated)."""
        p = self.probs(feats, update_stats=True)
        return torch.bernoulli(p, generator=self.gen)

    def update(self, feats: torch.Tensor, actions: torch.Tensor, reward: float) -> dict:
        """One REINFORCE step for a round; returns the advantage and the loss."""
        b = reward if self.baseline is None else self.baseline
        adv = reward - b
        p = self.probs(feats)
        logp = actions * torch.log(p.clamp_min(1e-8)) + (1 - actions) * torch.log(
            (1 - p).clamp_min(1e-8))
        loss = -adv * logp.sum()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.baseline = reward if self.baseline is None else (
            self.decay * self.baseline + (1 - self.decay) * reward)
        return {"advantage": adv, "loss": float(loss.detach()), "baseline": self.baseline,
                "kept": float(actions.mean())}
