"""AdaBERT's losses over the one training loop.

Per depth K (cells 1..K, the head on cell K)::

    L_K   = (1 − γ) · CE(head(cell_K), y) + γ · Σ_{m ≤ K} w_m · τ²·KL(probe_{j(m,K)} ‖ head_m(cell_m))
    j(m,K) = ⌈m · L / K⌉          (proportional teacher layer, 1..L; L = teacher's layers)
    w      = softmax(−probe loss of j(1,K) .. j(K,K))
    L_E   = E[K]/K_max · mean over edges of Σ_o softmax(α_e)_o · cost_o   (the expectation
            under the architecture distribution; costs: each op's share of the search space's
            total, so they sum to 1 over the ops)

Search (:class:`AdaBertSearchObjective`): minimise E_a[L_K(a)] + β·L_E over the architecture
distribution p (softmax of the op logits per edge, softmax of the depth logits). Each step
updates the weights on a training batch, then the architecture logits on a batch of the held-out
stream (two optimizers, each step touching only its own parameters); the first ``arch_start``
share of the steps is a warm-up of the weights alone (the architecture stays uniform).

- weights: op weights w_{e,o} and depth weights d_K are Gumbel-softmax samples with
  straight-through hard one-hots, temperature annealed exponentially from ``gumbel_start`` to
  ``gumbel_end``; the loss is Σ_K d_K·L_K. With ``sampled_forward`` (the default) only the
  sampled op of each edge and the cells up to the sampled depth are computed (GDAS, Dong & Yang
  2019), ~16× cheaper than every op on the default supernet. ``warmup_forward=soft`` replaces
  the warm-up's samples by the softmax itself over every op and depth (DARTS' mixture): every
  op trained at every step.
- architecture (``arch_gradient``): ``rloo`` (the default) estimates ∇E_a[L_K(a)] from
  ``arch_samples`` architectures sampled on the same batch, each one's loss against the mean of
  the others (REINFORCE with a leave-one-out baseline; Williams 1992, Kool et al. 2019):
  unbiased, forward passes only; β·L_E adds its exact gradient. ``straight-through`` is the
  paper's estimator: the loss of one Gumbel sample, backpropagated through the soft sample.

Why ``rloo`` (measured on ``synthetic``'s ordered bigram, a task only a convolution solves):
the straight-through gradient of a sampled op is ∂L/∂w_o at w_o = 1, the loss's sensitivity to
that op's output scale, not the loss difference between ops; once the layers after it are
trained it is small. On a supernet after 600 weight steps (architecture uniform), its mean on
the conv logits was −1.1..−1.6·10⁻³ at τ = 1 (−2.5..−3.7·10⁻³ at τ = 0.2), while the gradient
of E_a[CE] (Monte Carlo over 1,500 sampled architectures) was −6.9..−7.6·10⁻³ and the RLOO
mean −6.4..−8.4·10⁻³, at about the same signal-to-noise per sample (mean/sd 0.10 against
0.08-0.14). L_E's gradient is exact (per unit of β: +0.04 conv3, +1.96 conv7, −1.5 pools and
identity, ·10⁻³), so with the straight-through task gradient the cost outweighed convolutions
whose cells had a held-out CE of 0.12-0.15 (pools, identity: 0.74-0.76): the searches kept
pools at every β ≥ 0.5 tried (300 and 1,500 steps), and at β = 4 also after a 600-step warm-up.
RLOO puts both terms on the same footing, so β trades loss against cost as written. It is also
cheaper: 271 ms per architecture step against 494 ms on the default supernet (8 cells, width
128, batch 32, length 48, one thread, on a 2-core machine shared with other jobs).

Why the sampled warm-up by default: a sampled step trains each op in ~1 step of 10, so after
100 warm-up steps the conv-only cells still had a held-out CE of 0.67-0.69 (chance 0.69), 0.008-
0.07 with the soft forward; but a soft step costs ~20× a sampled one on the default supernet
(9.9 s against 0.48 s, as above), and with RLOO 600 search steps with the sampled warm-up find
the convolution as 300 with the soft one do. Retraining (:class:`AdaBertObjective`) uses L_K of
the derived depth.

head_m for m < K are small auxiliary classifiers owned by the objective (not exported); head_K
is the model's classifier. KD targets are the probes' cached logits (``batch["probe_row"]``
indexes them); per-example ``weight`` extras weight CE and KD as everywhere in lmdistill.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...data.collate import Encoded
from ...losses import hard_ce_loss, soft_kd_loss
from ...models.adabert import (AdaBertForSequenceClassification, derive, edges_of,
                               masked_mean_max)
from ...train.loop import make_optimizer
from .probes import layer_weights

PROBE_ROW = "probe_row"


def teacher_layer(m: int, k: int, n_layers: int) -> int:
    """The teacher layer (1..n_layers) whose probe teaches student cell m (1..k) of k."""
    return max(1, min(n_layers, math.ceil(m * n_layers / k)))


def efficiency_loss(op_weights: torch.Tensor, depth_weights: torch.Tensor,
                    costs: torch.Tensor) -> torch.Tensor:
    """(K / K_max) · mean_e Σ_o w_{e,o}·cost_o with K = Σ_K d_K·K (differentiable in both)."""
    kmax = depth_weights.shape[0]
    depth = (depth_weights * torch.arange(1, kmax + 1, dtype=depth_weights.dtype,
                                          device=depth_weights.device)).sum()
    return depth / kmax * (op_weights * costs).sum(-1).mean()


def genotype_cost(genotype: dict, ops, costs, max_cells: int) -> float:
    """L_E of a derived architecture: :func:`efficiency_loss` at its one-hot ops (the edges it
    drops count as ``zero``: cost 0) and depth, over every edge of the search space."""
    ops = list(ops)
    nodes = genotype["nodes"]
    edges = edges_of(len(nodes))
    w = torch.zeros(len(edges), len(ops))
    for j, node in enumerate(nodes):
        for i, op in node:
            w[edges.index((int(i), j)), ops.index(op)] = 1.0
    depth = torch.zeros(max_cells)
    depth[int(genotype["cells"]) - 1] = 1.0
    return float(efficiency_loss(w, depth, torch.as_tensor(costs, dtype=torch.float32)))


def expected_depth(depth_logits: torch.Tensor) -> torch.Tensor:
    """E[K] = Σ_K softmax(depth_logits)_K · K, on the logits' device (a GPU in real runs)."""
    k = torch.arange(1, depth_logits.shape[0] + 1, dtype=depth_logits.dtype,
                     device=depth_logits.device)
    return (depth_logits.softmax(0) * k).sum()


class AdaBertObjective(nn.Module):
    """Training a derived AdaBERT student (fixed depth) with probe KD."""

    def __init__(self, model: AdaBertForSequenceClassification, probes: torch.Tensor,
                 probe_loss: list[float], gamma: float = 0.8, temperature: float = 1.0):
        super().__init__()
        self.model = model
        self.kmax = (model.config.max_cells if model.searching
                     else int(model.config.genotype["cells"]))
        d, c = 2 * model.config.hidden, model.config.num_labels
        self.aux = nn.ModuleList(nn.Linear(d, c) for _ in range(self.kmax - 1))
        self.probes = probes.float()        # [rows, J, C]; not a parameter, not checkpointed
        self.probe_loss = list(probe_loss)  # [J]
        self.n_layers = len(probe_loss) - 1  # J = embeddings + L layers
        self.gamma, self.tau = gamma, temperature

    # ---------------------------------------------------------------- losses
    def depth_losses(self, batch: dict, outs: list[torch.Tensor], depths) -> dict:
        """CE, KD and L_K (tensors) for each depth K in ``depths``."""
        mask = batch["attention_mask"]
        feats = [masked_mean_max(h, mask) for h in outs]
        target = self.probes[batch[PROBE_ROW].cpu()].to(mask.device)  # [B, J, C]
        w = batch.get("weight")
        labels = batch.get("labels")
        res = {}
        for k in depths:
            final = self.model.classifier(self.model.dropout(feats[k - 1]))
            ce = hard_ce_loss(final, labels, w) if labels is not None else final.sum() * 0
            js = [teacher_layer(m, k, self.n_layers) for m in range(1, k + 1)]
            lw = layer_weights(self.probe_loss, js)
            kd = 0.0
            for m, (j, a) in enumerate(zip(js, lw.tolist()), start=1):
                s = final if m == k else self.aux[m - 1](self.model.dropout(feats[m - 1]))
                kd = kd + a * soft_kd_loss(s, target[:, j], self.tau, w)
            res[k] = {"ce": ce, "kd": kd, "loss": (1 - self.gamma) * ce + self.gamma * kd}
        return res

    def forward(self, batch: dict) -> dict:
        outs = self.model.cell_outputs(batch["input_ids"], batch["attention_mask"],
                                       batch.get("token_type_ids"))
        r = self.depth_losses(batch, outs, [self.kmax])[self.kmax]
        return {"loss": r["loss"], "ce": r["ce"].detach(), "kd": r["kd"].detach()}

    @torch.no_grad()
    def predict(self, batch: dict) -> torch.Tensor:
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          token_type_ids=batch.get("token_type_ids")).logits

    def save_pretrained(self, out_dir) -> None:
        self.model.save_pretrained(out_dir)


class AdaBertSearchObjective(AdaBertObjective):
    """The differentiable search over a supernet (see the module docstring)."""

    def __init__(self, model: AdaBertForSequenceClassification, probes: torch.Tensor,
                 probe_loss: list[float], costs: list[float], heldout: Encoded, settings,
                 seed: int = 0):
        super().__init__(model, probes, probe_loss, settings.gamma, settings.temperature)
        cfg = model.config
        g = torch.Generator().manual_seed(seed)
        n_edges = len(edges_of(cfg.nodes))
        self.op_logits = nn.Parameter(1e-3 * torch.randn(n_edges, len(cfg.ops), generator=g))
        self.depth_logits = nn.Parameter(torch.zeros(cfg.max_cells))
        self.register_buffer("costs", torch.tensor(costs, dtype=torch.float32),
                             persistent=False)
        self.s = settings
        self.heldout = heldout
        self.gumbel_tau = settings.gumbel_start
        self.step, self.total = 0, 1

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.op_logits, self.depth_logits]

    def streams(self) -> dict:
        return {"arch": self.heldout}

    def on_step_begin(self, step: int, total_steps: int) -> None:
        self.step, self.total = step, total_steps
        frac = step / max(total_steps - 1, 1)
        self.gumbel_tau = self.s.gumbel_start * (self.s.gumbel_end / self.s.gumbel_start) ** frac

    def configure_optimizers(self, cfg, total_steps: int) -> dict:
        arch = {id(p) for p in self.arch_parameters()}
        named = [(n, p) for n, p in self.named_parameters() if id(p) not in arch]
        weights = make_optimizer(named, cfg, total_steps)
        opt = torch.optim.Adam(self.arch_parameters(), lr=self.s.arch_lr, betas=(0.5, 0.999),
                               weight_decay=self.s.arch_weight_decay)
        return {"weights": weights, "arch": (opt, None)}

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Straight-through Gumbel-softmax: one-hot forward, soft gradient."""
        return (F.gumbel_softmax(self.op_logits, self.gumbel_tau, hard=True),
                F.gumbel_softmax(self.depth_logits, self.gumbel_tau, hard=True))

    def argmax_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        return (F.one_hot(self.op_logits.argmax(-1), self.op_logits.shape[-1]).float(),
                F.one_hot(self.depth_logits.argmax(), self.depth_logits.shape[0]).float())

    def search_loss(self, batch: dict, op_w: torch.Tensor, depth_w: torch.Tensor,
                    sampled: bool | None = None) -> dict:
        """Σ_K d_K·L_K + β·L_E for op weights ``op_w`` and depth weights ``depth_w``;
        ``sampled`` (default ``sampled_forward``): compute only the argmax op and depth."""
        k = int(depth_w.argmax()) + 1
        sampled = self.s.sampled_forward if sampled is None else sampled
        outs = self.model.cell_outputs(batch["input_ids"], batch["attention_mask"],
                                       batch.get("token_type_ids"), op_w,
                                       depth=k if sampled else None, sampled=sampled)
        per = self.depth_losses(batch, outs, [k] if sampled else range(1, self.kmax + 1))
        task = sum(depth_w[d - 1] * per[d]["loss"] for d in per)
        eff = efficiency_loss(self.op_logits.softmax(-1), self.depth_logits.softmax(0),
                              self.costs)
        return {"loss": task + self.s.beta * eff, "task": task.detach(),
                "ce": per[k]["ce"].detach(), "kd": per[k]["kd"].detach(), "eff": eff.detach(),
                "depth": float(k)}

    def forward(self, batch: dict) -> dict:
        return self.search_loss(batch, *self.sample())

    def warming_up(self) -> bool:
        """Before ``arch_start``: weight steps only (the architecture stays uniform)."""
        return self.step < self.s.arch_start * self.total

    def weight_sample(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(op weights, depth weights, sampled forward) of a weight step: during the warm-up
        with ``warmup_forward=soft`` the architecture softmax over every op and depth (no
        gradient to the logits), else a Gumbel sample."""
        if self.warming_up() and self.s.warmup_forward == "soft":
            return (self.op_logits.detach().softmax(-1), self.depth_logits.detach().softmax(0),
                    False)
        return (*self.sample(), self.s.sampled_forward)

    def rloo_loss(self, batch: dict) -> dict:
        """A surrogate whose gradient is the leave-one-out score-function estimate of
        ∇E_a[L_K(a)] (n = ``arch_samples`` architectures a_i sampled on ``batch``)::

            ĝ = (1/n) Σ_i (L_i − mean_{j≠i} L_j) · ∇ log p(a_i)

        plus β·∇L_E (exact). ``"loss"`` is the value estimated: mean_i L_i + β·L_E."""
        ops = torch.distributions.Categorical(logits=self.op_logits)
        depths = torch.distributions.Categorical(logits=self.depth_logits)
        task, logp = [], []
        for _ in range(self.s.arch_samples):
            a, d = ops.sample(), depths.sample()
            with torch.no_grad():  # forward passes only: no backward through the supernet
                out = self.search_loss(batch, F.one_hot(a, self.op_logits.shape[-1]).float(),
                                       F.one_hot(d, self.depth_logits.shape[0]).float(), True)
            task.append(out["task"])
            logp.append(ops.log_prob(a).sum() + depths.log_prob(d))
        losses, n = torch.stack(task), len(task)
        adv = losses - (losses.sum() - losses) / (n - 1)
        eff = efficiency_loss(self.op_logits.softmax(-1), self.depth_logits.softmax(0),
                              self.costs)
        surrogate = (adv * torch.stack(logp)).sum() / n + self.s.beta * eff
        return {"surrogate": surrogate,
                "loss": (losses.mean() + self.s.beta * eff).detach()}

    def training_step(self, trainer, group) -> dict:
        n = len(group)
        logs: dict[str, float] = {}
        for idx in group:  # weights: gradient accumulation over the group's micro-batches
            out = self.search_loss(trainer.batch(idx), *self.weight_sample())
            trainer.backward(out["loss"], 1.0 / n)
            for key, v in out.items():
                v = v.detach() if torch.is_tensor(v) else v
                logs[key] = logs.get(key, 0.0) + float(v) / n
        norm = trainer.step_optimizer("weights")
        if norm is not None:
            logs["grad_norm"] = norm
        self.zero_grad(set_to_none=True)  # the architecture's gradients of that pass
        if not self.warming_up():
            batch = trainer.next_batch("arch")
            if self.s.arch_gradient == "rloo":
                out = self.rloo_loss(batch)
                trainer.backward(out["surrogate"])
            else:
                out = self.search_loss(batch, *self.sample())
                trainer.backward(out["loss"])
            trainer.step_optimizer("arch")
            self.zero_grad(set_to_none=True)
            logs["arch_loss"] = float(out["loss"].detach())
        logs["expected_depth"] = float(expected_depth(self.depth_logits.detach()))
        logs["gumbel_tau"] = self.gumbel_tau
        return logs

    @torch.no_grad()
    def predict(self, batch: dict) -> torch.Tensor:
        """The current most likely architecture (argmax ops and depth)."""
        op_w, depth_w = self.argmax_weights()
        k = int(depth_w.argmax()) + 1
        outs = self.model.cell_outputs(batch["input_ids"], batch["attention_mask"],
                                       batch.get("token_type_ids"), op_w, depth=k)
        return self.model.head(outs[-1], batch["attention_mask"])

    def genotype(self) -> dict:
        cfg = self.model.config
        return derive(self.op_logits, self.depth_logits, cfg.nodes, cfg.ops, self.s.keep_edges)

    def save_pretrained(self, out_dir) -> None:
        """The search's output: the derived architecture and the architecture distribution."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "architecture.json").write_text(json.dumps(self.genotype(), indent=1))
        (out / "arch_probs.json").write_text(json.dumps({
            "ops": list(self.model.config.ops),
            "op_probs": self.op_logits.detach().softmax(-1).tolist(),
            "depth_probs": self.depth_logits.detach().softmax(0).tolist()}, indent=1))
