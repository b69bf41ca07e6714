"""Meta-KD's objectives over the one loop.

- :class:`MetaTeacherObjective` — the meta-teacher on all (source) domains:
  ``loss_i = t_i · [CE(y_i) + λ · CE(domain head(h_i + E[d_i]), d̃_i)]`` with t the prototype
  score, h the mean-pooled last hidden state, E a learned domain embedding and d̃ the batch's
  domain labels *permuted anew every step* (as the authors do: a fresh seeded permutation per
  batch, so the head cannot memorise one fixed noise pattern nor learn the domain from the
  text, and the encoder is pushed towards domain-invariant features). The domain head is the
  authors' ``dense → tanh → dropout → linear``. t enters as the per-instance ``weight`` extra:
  weighted before reduction, normalised by the batch's sum of weights (the library's
  convention), so two instances contribute in the ratio of their weights.
- :class:`MultiTaskTeacherObjective` — the multi-task baseline: a shared encoder with one
  classification head per domain (the model's own head type, on its pooled output). A domain
  whose head never trains (the target in the no-in-domain setting) is predicted by the
  average of the trained heads' logits; as the heads are linear on the same pooled output,
  that average is itself one linear head (the mean of their weights and biases), so the
  exported teacher stays a plain classifier. Averaging logits rather than probabilities keeps
  that exactness (a probability average is not one head) and is what an ensemble of the source
  heads' log-odds gives; with two labels both pick the same class whenever the heads agree.
- :class:`MetaKDObjective` — the distillation objective (a :class:`KDObjective`) plus the
  transferable-domain-representation term: MSE between the student's ``P·h_S + E_S[d]`` and
  the meta-teacher's ``h_T + E_T[d]`` (precomputed per training row), weighted per instance
  like every other term.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ... import losses as L
from ...data.collate import WEIGHT
from ...errors import ConfigError
from ...teachers import Needs
from ..finetune import model_inputs, supervised_loss
from ..kd.objective import KDObjective

DOMAIN, ROW = "domain", "row"
DOMAIN_FILE = "domain_head.safetensors"
HEADS_FILE = "domain_heads.safetensors"


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask[..., None].to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1)


def batch_permutation(n: int, seed: int, step: int) -> torch.Tensor:
    """The step's permutation of a batch's n rows: a function of (seed, step) only, so a
    resumed run draws the same ones."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randperm(n, generator=g)


class MetaTeacherObjective(nn.Module):
    def __init__(self, model, num_domains: int, lam: float = 0.5, tokenizer=None,
                 seed: int = 0):
        super().__init__()
        self.model = model
        width = model.config.hidden_size
        self.domain_embedding = nn.Embedding(num_domains, width)
        nn.init.normal_(self.domain_embedding.weight, std=0.02)
        p = getattr(model.config, "hidden_dropout_prob", 0.1)
        self.domain_head = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Dropout(p),
                                         nn.Linear(width, num_domains))
        self.lam = lam
        self.tokenizer = tokenizer
        self.seed = seed
        self.step = 0

    def on_step_begin(self, step: int, total_steps: int) -> None:
        self.step = step

    def shuffled(self, domains: torch.Tensor) -> torch.Tensor:
        """This step's corrupted domain labels: the batch's labels in a fresh permutation."""
        return domains[batch_permutation(len(domains), self.seed, self.step).to(domains.device)]

    def represent(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, domain representation h + E[d])."""
        out = self.model(**model_inputs(batch), output_hidden_states=True)
        h = masked_mean(out.hidden_states[-1], batch["attention_mask"])
        return out.logits, h + self.domain_embedding(batch[DOMAIN])

    def forward(self, batch: dict) -> dict:
        if DOMAIN not in batch:
            raise ConfigError("the meta-teacher needs the 'domain' extra")
        logits, rep = self.represent(batch)
        w = batch.get(WEIGHT)
        ce = supervised_loss(logits, batch["labels"], False, w)
        dom = L.hard_ce_loss(self.domain_head(rep), self.shuffled(batch[DOMAIN]), w)
        return {"loss": ce + self.lam * dom, "ce": ce.detach(), "domain_ce": dom.detach()}

    def predict(self, batch: dict) -> torch.Tensor:
        return self.model(**model_inputs(batch)).logits

    def save_pretrained(self, out_dir) -> None:
        from safetensors.torch import save_file

        from ...models.hub import save_model

        save_model(self.model, out_dir, self.tokenizer)
        save_file({"domain_embedding": self.domain_embedding.weight.detach().contiguous(),
                   **{f"domain_head.{k}": v.detach().contiguous()
                      for k, v in self.domain_head.state_dict().items()}},
                  str(Path(out_dir) / DOMAIN_FILE))


def load_domain_embedding(model_dir) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / DOMAIN_FILE))["domain_embedding"]


class MultiTaskTeacherObjective(nn.Module):
    """Shared encoder, one head per domain (copies of the model's classifier, on its pooled
    output); ``trained``: the domains with training rows (default all); any other domain is
    predicted by the mean of the trained heads' logits. ``export_domain_teacher`` writes
    domain d's teacher as a plain HF classifier."""

    def __init__(self, model, num_domains: int, tokenizer=None,
                 trained: list[int] | None = None):
        super().__init__()
        import copy

        if not hasattr(model, "classifier") or not isinstance(model.classifier, nn.Linear):
            raise ConfigError("the multi-task teacher needs a BERT-style classifier (a "
                              "pooled output and a linear `classifier`)")
        self.model = model
        self.heads = nn.ModuleList(copy.deepcopy(model.classifier) for _ in range(num_domains))
        self.trained = sorted(trained if trained is not None else range(num_domains))
        if not self.trained or not set(self.trained) <= set(range(num_domains)):
            raise ConfigError(f"trained domains {trained} must be a non-empty subset of "
                              f"0..{num_domains - 1}")
        self.tokenizer = tokenizer

    def logits(self, batch: dict) -> torch.Tensor:
        base = getattr(self.model, self.model.base_model_prefix)
        pooled = base(**model_inputs(batch)).pooler_output
        pooled = self.model.dropout(pooled)
        d = batch[DOMAIN]
        out = torch.stack([h(pooled) for h in self.heads], 1)  # [B, D, C]
        untrained = [k for k in range(len(self.heads)) if k not in self.trained]
        if untrained:  # an untrained head's domain: the mean of the trained heads' logits
            mean = out[:, self.trained].mean(1, keepdim=True)
            keep = torch.zeros(len(self.heads), dtype=torch.bool, device=out.device)
            keep[self.trained] = True
            out = torch.where(keep[None, :, None], out, mean)
        return out[torch.arange(len(d), device=d.device), d]

    def forward(self, batch: dict) -> dict:
        return {"loss": supervised_loss(self.logits(batch), batch["labels"], False,
                                        batch.get(WEIGHT))}

    def predict(self, batch: dict) -> torch.Tensor:
        return self.logits(batch)

    def save_pretrained(self, out_dir) -> None:
        from safetensors.torch import save_file

        from ...models.hub import save_model

        save_model(self.model, out_dir, self.tokenizer)
        save_file({f"heads.{k}": v.contiguous() for k, v in self.heads.state_dict().items()},
                  str(Path(out_dir) / HEADS_FILE),
                  metadata={"trained": ",".join(map(str, self.trained))})


def export_domain_teacher(multitask_dir, domain: int, out_dir, load_classifier) -> None:
    """Domain ``domain``'s teacher of a multi-task model as a plain HF classifier folder: its
    own head when it trained, else the mean of the trained heads (weights and biases: the
    mean of their logits)."""
    from safetensors import safe_open

    from ...models.hub import load_tokenizer, save_model

    model = load_classifier(str(multitask_dir))
    path = str(Path(multitask_dir) / HEADS_FILE)
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
        heads = {k: f.get_tensor(k) for k in f.keys()}
    n = len([k for k in heads if k.endswith(".weight")])
    trained = ([int(x) for x in meta["trained"].split(",")] if meta.get("trained")
               else list(range(n)))
    use = [domain] if domain in trained else trained
    with torch.no_grad():
        model.classifier.weight.copy_(torch.stack([heads[f"heads.{k}.weight"]
                                                   for k in use]).mean(0))
        model.classifier.bias.copy_(torch.stack([heads[f"heads.{k}.bias"] for k in use]).mean(0))
    save_model(model, out_dir, load_tokenizer(str(multitask_dir)))


class MetaKDObjective(KDObjective):
    """:class:`KDObjective` + the domain-representation MSE (``set_domain_targets`` first;
    without targets it is plain KD)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.domain_targets: torch.Tensor | None = None
        self.domain_weight = 1.0

    def set_domain_targets(self, targets: torch.Tensor, num_domains: int,
                           weight: float = 1.0) -> None:
        """``targets`` [rows, H_T]: the meta-teacher's h_T + E_T[d] of every training row
        (indexed by the batch's ``row`` extra)."""
        self.domain_targets = targets.float()
        self.domain_weight = weight
        width = self.student.config.hidden_size
        self.domain_proj = nn.Linear(width, targets.shape[1])
        self.domain_embedding = nn.Embedding(num_domains, targets.shape[1])
        nn.init.normal_(self.domain_embedding.weight, std=0.02)
        last = self.student.config.num_hidden_layers
        self.s_needs = Needs(hidden=tuple(sorted(set(self.s_needs.hidden) | {last})),
                             attention=self.s_needs.attention, value=self.s_needs.value)
        self._last = last

    def compute(self, batch: dict):
        loss, terms, s, t = super().compute(batch)
        if self.domain_targets is not None:
            h = masked_mean(s.hidden[self._last], batch["attention_mask"])
            rep = self.domain_proj(h) + self.domain_embedding(batch[DOMAIN])
            target = self.domain_targets[batch[ROW].cpu()].to(rep.device)
            terms["domain_rep"] = L.hidden_mse_loss(rep, target, weights=batch.get(WEIGHT))
            loss = loss + self.domain_weight * terms["domain_rep"]
        return loss, terms, s, t
