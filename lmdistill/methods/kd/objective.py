"""Logit + intermediate-layer knowledge distillation: the objective of ``lmdistill distill``.

    loss = (1 − α)·L_hard + α·L_soft + β·Σ_m w_m·L_m      (``losses.kd_mixture``; α ∈ [0, 1])

- ``L_hard``: CE on gold labels (MSE for regression); rows without a label (augmented text)
  contribute nothing.
- ``L_soft``: τ²·KL(p_T^τ ‖ p_S^τ) (``losses.soft_kd_loss``); with several teachers p_T^τ is
  the per-example weighted mixture Σ_k w_k softmax(t_k/τ) (``teachers.mix``). Regression: MSE
  to the (weighted) teacher prediction.
- ``L_m``: one term per layer match (``mapping.LayerMatch``): hidden-state MSE through a
  learned projection when widths differ, attention KL, MiniLM value-relation KL, cosine.
α, τ and β may follow schedules (``schedules.make_schedule``); the loop tells the objective the
step through ``on_step_begin``. Every term is logged separately.
"""

from __future__ import annotations

import torch

from ... import losses as L
from ...data.collate import WEIGHT
from ...mapping import LayerMatch, Projections
from ...schedules import make_checked_schedules
from ...teachers import Needs, TeacherSignal, mix, prepare_for_features, run_model, to_device
from ..finetune import model_inputs, supervised_loss


def needs_of(matches: list[LayerMatch]) -> Needs:
    def layers(*feats):
        return tuple(sorted({m.teacher_layer for m in matches if m.feature in feats}))

    return Needs(hidden=layers("hidden", "cosine"), attention=layers("attention"),
                 value=layers("value_relation"))


def student_needs(matches: list[LayerMatch]) -> Needs:
    def layers(*feats):
        return tuple(sorted({m.student_layer for m in matches if m.feature in feats}))

    return Needs(hidden=layers("hidden", "cosine"), attention=layers("attention"),
                 value=layers("value_relation"))


#: (feature, loss name) -> the reference function computing it; every pair that
#: ``mapping.LOSSES`` accepts is here (tested), so the loss a match names is the loss computed
MATCH_LOSSES = {
    ("hidden", "mse"): L.hidden_mse_loss,
    ("hidden", "cosine"): L.cosine_embedding_loss,
    ("cosine", "cosine"): L.cosine_embedding_loss,
    ("attention", "kl"): L.attention_kl_loss,
    ("attention", "mse"): L.attention_mse_loss,
    ("value_relation", "kl"): L.value_relation_loss,
}


class KDObjective(torch.nn.Module):
    def __init__(self, student: torch.nn.Module, teacher: TeacherSignal,
                 matches: list[LayerMatch] | None = None, projections: Projections | None = None,
                 alpha=0.5, temperature=2.0, beta=1.0, regression: bool = False,
                 relation_heads: int = 12, tokenizer=None, total_steps: int | None = None,
                 logit_loss: bool = True):
        """``alpha``/``temperature``/``beta``: numbers or schedule specs (``"linear:4:1"``).
        ``logit_loss=False``: no hard and no soft logit term, only the layer matches."""
        super().__init__()
        self.logit_loss = logit_loss
        self.student = student
        self.projections = projections or Projections([], 1, 1)
        self.__dict__["teacher"] = teacher  # frozen: not a parameter, not checkpointed
        self.tokenizer = tokenizer
        self.matches = matches or []
        self.regression = regression
        self.relation_heads = relation_heads
        self.s_needs = student_needs(self.matches)
        self.recorder = prepare_for_features(student, self.s_needs)
        self.specs = {"alpha": alpha, "temperature": temperature, "beta": beta}
        self._total = total_steps
        self._build_schedules(total_steps or 1)  # validates the specs now
        self.step = 0

    def _build_schedules(self, total_steps: int) -> None:
        for name, sched in make_checked_schedules(self.specs, total_steps).items():
            setattr(self, name, sched)

    def on_step_begin(self, step: int, total_steps: int) -> None:
        """Called by the loop before each optimizer step (schedules need the run length)."""
        if self._total != total_steps:
            self._build_schedules(total_steps)
            self._total = total_steps
        self.step = step

    def _match_loss(self, m: LayerMatch, s, t, mask, w=None) -> torch.Tensor:
        """The loss ``m.loss`` names for ``m.feature`` (``MATCH_LOSSES``: one function each)."""
        fn = MATCH_LOSSES[m.feature, m.loss]
        if m.feature in ("hidden", "cosine"):
            return fn(s.hidden[m.student_layer], t.hidden[m.teacher_layer], mask,
                      proj=self.projections.get(m), weights=w)
        if m.feature == "attention":
            return fn(s.attention[m.student_layer], t.attention[m.teacher_layer], mask,
                      weights=w)
        return fn(s.value[m.student_layer], t.value[m.teacher_layer], mask,
                  self.relation_heads, weights=w)

    def forward(self, batch: dict) -> dict:
        """loss = kd_mixture(hard, soft, α) + β·Σ w_m·L_m, every term weighted per example by
        the batch's ``weight`` extra (if any) before its reduction."""
        loss, terms, _, _ = self.compute(batch)
        return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}

    def compute(self, batch: dict):
        """``(loss, terms, student features, teacher output)``: the pieces a subclass adds
        its own terms to (e.g. Meta-KD's domain representation) without a second forward."""
        dev = batch["input_ids"].device
        t = to_device(self.teacher(batch), dev)
        out, s = run_model(self.student, batch, self.s_needs, self.recorder)
        logits = out.logits
        w = batch.get(WEIGHT)
        alpha, tau = self.alpha(self.step), self.temperature(self.step)
        terms: dict[str, torch.Tensor] = {}
        if not self.logit_loss:  # intermediate terms only (e.g. Meta-KD's first stage)
            loss = logits.sum() * 0.0
            if self.matches:
                mask = batch["attention_mask"]
                terms["inter"] = sum(m.weight * self._match_loss(m, s, t, mask, w)
                                     for m in self.matches)
                loss = loss + self.beta(self.step) * terms["inter"]
            return loss, terms, s, t
        if "labels" in batch and alpha < 1:
            terms["hard"] = supervised_loss(logits, batch["labels"], self.regression, w)
        if self.regression:
            target = mix(t.logits, t.weights, regression=True) if t.weights is not None \
                else t.logits
            terms["soft"] = L.mse_regression_kd(logits.squeeze(-1), target.squeeze(-1), w)
        elif t.weights is not None:
            probs = mix(t.logits, t.weights, tau)
            terms["soft"] = L.soft_kd_loss(logits, teacher_probs=probs, temperature=tau,
                                           weights=w)
        else:
            terms["soft"] = L.soft_kd_loss(logits, t.logits, temperature=tau, weights=w)
        if t.weights is not None:  # logged: how much each teacher counted in this batch
            for k in range(t.weights.shape[-1]):
                terms[f"w_teacher{k}"] = t.weights[..., k].float().mean()
        loss = L.kd_mixture(terms.get("hard", 0.0), terms["soft"], alpha)
        if self.matches:
            mask = batch["attention_mask"]
            inter = sum(m.weight * self._match_loss(m, s, t, mask, w) for m in self.matches)
            terms["inter"] = inter
            loss = loss + self.beta(self.step) * inter
        return loss, terms, s, t

    def predict(self, batch: dict) -> torch.Tensor:
        logits = self.student(**model_inputs(batch)).logits
        if self.recorder is not None:  # the value hooks fire here too: don't keep eval batches
            self.recorder.outputs.clear()
        return logits

    def save_pretrained(self, out_dir) -> None:
        from pathlib import Path

        from ...models.hub import save_model

        save_model(self.student, out_dir, self.tokenizer)
        if self.projections.keep and len(self.projections.keys()):
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in self.projections.state_dict().items()},
                      str(Path(out_dir) / "projections.safetensors"))

