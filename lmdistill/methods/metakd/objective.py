"""Meta-KD's objectives over the one loop.

- :class:`MetaTeacherObjective` — the meta-teacher on all (source) domains:
  ``loss_i = t_i · [CE(y_i) + λ · CE(domain head(h_i + E[d_i]), d̃_i)]`` with t the prototype
  score, h the mean-pooled last hidden state, E a learned domain embedding and d̃ the domain
  labels *shuffled* across the training set (a fixed seeded permutation: the head cannot learn
  the domain from the text, so the encoder is pushed towards domain-invariant features).
  t enters as the per-instance ``weight`` extra: weighted before reduction, normalised by the
  batch's sum of weights (the library's convention), so two instances contribute in the ratio
  of their weights.
- :class:`MultiTaskTeacherObjective` — the multi-task baseline: a shared encoder with one
  classification head per domain (the model's own head type, on its pooled output).
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

DOMAIN, SHUFFLED, ROW = "domain", "shuffled_domain", "row"
DOMAIN_FILE = "domain_head.safetensors"


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask[..., None].to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1)


def shuffled_domains(domains: list[int], seed: int) -> list[int]:
    """The domain labels permuted across the rows (same multiset, another row each)."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(domains), generator=g).tolist()
    return [domains[p] for p in perm]


class MetaTeacherObjective(nn.Module):
    def __init__(self, model, num_domains: int, lam: float = 0.5, tokenizer=None):
        super().__init__()
        self.model = model
        width = model.config.hidden_size
        self.domain_embedding = nn.Embedding(num_domains, width)
        nn.init.normal_(self.domain_embedding.weight, std=0.02)
        self.domain_head = nn.Linear(width, num_domains)
        self.lam = lam
        self.tokenizer = tokenizer

    def represent(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, domain representation h + E[d])."""
        out = self.model(**model_inputs(batch), output_hidden_states=True)
        h = masked_mean(out.hidden_states[-1], batch["attention_mask"])
        return out.logits, h + self.domain_embedding(batch[DOMAIN])

    def forward(self, batch: dict) -> dict:
        if SHUFFLED not in batch or DOMAIN not in batch:
            raise ConfigError("the meta-teacher needs 'domain' and 'shuffled_domain' extras")
        logits, rep = self.represent(batch)
        w = batch.get(WEIGHT)
        ce = supervised_loss(logits, batch["labels"], False, w)
        dom = L.hard_ce_loss(self.domain_head(rep), batch[SHUFFLED], w)
        return {"loss": ce + self.lam * dom, "ce": ce.detach(), "domain_ce": dom.detach()}

    def predict(self, batch: dict) -> torch.Tensor:
        return self.model(**model_inputs(batch)).logits

    def save_pretrained(self, out_dir) -> None:
        from safetensors.torch import save_file

        from ...models.hub import save_model

        save_model(self.model, out_dir, self.tokenizer)
        save_file({"domain_embedding": self.domain_embedding.weight.detach().contiguous(),
                   "domain_head.weight": self.domain_head.weight.detach().contiguous(),
                   "domain_head.bias": self.domain_head.bias.detach().contiguous()},
                  str(Path(out_dir) / DOMAIN_FILE))


def load_domain_embedding(model_dir) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / DOMAIN_FILE))["domain_embedding"]


class MultiTaskTeacherObjective(nn.Module):
    """Shared encoder, one head per domain (copies of the model's classifier, on its pooled
    output); ``export_domain`` writes domain d's teacher as a plain HF classifier."""

    def __init__(self, model, num_domains: int, tokenizer=None):
        super().__init__()
        import copy

        if not hasattr(model, "classifier") or not isinstance(model.classifier, nn.Linear):
            raise ConfigError("the multi-task teacher needs a BERT-style classifier (a "
                              "pooled output and a linear `classifier`)")
        self.model = model
        self.heads = nn.ModuleList(copy.deepcopy(model.classifier) for _ in range(num_domains))
        self.tokenizer = tokenizer

    def logits(self, batch: dict) -> torch.Tensor:
        base = getattr(self.model, self.model.base_model_prefix)
        pooled = base(**model_inputs(batch)).pooler_output
        pooled = self.model.dropout(pooled)
        d = batch[DOMAIN]
        out = torch.stack([h(pooled) for h in self.heads], 1)  # [B, D, C]
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
                  str(Path(out_dir) / "domain_heads.safetensors"))


def export_domain_teacher(multitask_dir, domain: int, out_dir, load_classifier) -> None:
    """Domain ``domain``'s teacher of a multi-task model as a plain HF classifier folder."""
    from safetensors.torch import load_file

    from ...models.hub import load_tokenizer, save_model

    model = load_classifier(str(multitask_dir))
    heads = load_file(str(Path(multitask_dir) / "domain_heads.safetensors"))
    with torch.no_grad():
        model.classifier.weight.copy_(heads[f"heads.{domain}.weight"])
        model.classifier.bias.copy_(heads[f"heads.{domain}.bias"])
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
