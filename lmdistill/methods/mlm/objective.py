"""Masked-LM objectives: training an MLM (head, or head + encoder) and multi-teacher MLM
distillation with per-token prediction weighting.

Only masked positions are predicted: the encoder runs on the whole block, the vocabulary
projection (and its softmax) only on the N masked tokens of the batch, so a batch costs
[N, V] logits, not [B, L, V].

MLM KD loss (per batch)::

    loss = kd_mixture(hard, soft, α)                       (1 − α)·hard + α·soft
    hard = mean over masked tokens of −log p_S(gold)
    soft = τ²·KL(p_T^τ ‖ p_S^τ), mean over masked tokens   (losses.soft_kd_loss)
    p_T^τ = Σ_k w_k(token) softmax(t_k/τ)                  (teachers.mix, per token)

with ``w_k(token)`` from ``teachers.teacher_weights`` on the teachers' [K, N, V] predictions
and the gold tokens: uniform, confidence, entropy, gold-token probability, fixed.
"""

from __future__ import annotations

import torch

from ... import losses as L
from ...data.collate import IGNORE_INDEX
from ...names import MODEL_INPUTS
from ...teachers import TeacherOut, TeacherSignal, check_strategy, mix, teacher_weights, topk_probs
from ...schedules import make_checked_schedules


def _parts(model):
    """(encoder, head) of an HF ``*ForMaskedLM``, so the head runs on masked positions only;
    (None, None) for an architecture whose head is not known (then the full logits are
    computed and the masked rows taken: correct, only slower)."""
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    for name in ("cls", "lm_head"):  # BERT-likes / RoBERTa, XLM-R, ELECTRA-generator
        head = getattr(model, name, None)
        if base is not None and head is not None:
            return base, head
    return None, None


def masked_logits(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [N, V] at the batch's masked positions, their gold ids [N])."""
    sel = batch["labels"] != IGNORE_INDEX
    inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
    base, head = _parts(model)
    if base is None:
        return model(**inputs).logits[sel], batch["labels"][sel]
    hidden = base(**inputs)[0]
    return head(hidden[sel]), batch["labels"][sel]


class MLMObjective(torch.nn.Module):
    """Masked-token cross-entropy (training a teacher MLM, or the no-KD student)."""

    def __init__(self, model, masker, tokenizer=None, static: bool = False):
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        self.__dict__["masker"] = masker
        self.static, self.step = static, 0

    def on_step_begin(self, step: int, total_steps: int) -> None:
        self.step = step

    def collate(self, enc, indices):
        return self.masker(enc, indices, None if self.static else self.step)

    def forward(self, batch: dict) -> dict:
        logits, gold = masked_logits(self.model, batch)
        return {"loss": L.hard_ce_loss(logits, gold)}

    def save_pretrained(self, out_dir) -> None:
        from ...models.hub import save_model

        save_model(self.model, out_dir, self.tokenizer)


class MLMTeachers(TeacherSignal):
    """K masked-LM teachers' predictions at the masked positions of a batch, with per-token
    weights. Each teacher is a model (run once per batch, under inference mode, on the batch's
    device) or a :class:`~lmdistill.teachers.CachedTeacher` built with ``topk`` over the
    statically masked blocks: its top-k logits with the logsumexp of all logits and the gold
    token's own logit, so the soft target keeps every kept token's and the gold token's exact
    probability (:func:`~lmdistill.teachers.topk_probs`), never renormalised over k.
    Returns ``TeacherOut(logits=[K, N, V] (or [N, V] for one teacher), weights=[N, K])``."""

    def __init__(self, teachers: list, vocab: int, strategy: str = "uniform", fixed=None,
                 sharpness: float = 1.0):
        check_strategy(strategy, len(teachers), False, fixed)
        self.teachers, self.vocab = teachers, vocab
        self.strategy, self.fixed, self.sharpness = strategy, fixed, sharpness
        self.num_teachers = len(teachers)
        for t in teachers:
            if isinstance(t, torch.nn.Module):
                t.eval()
                for p in t.parameters():
                    p.requires_grad_(False)

    @torch.inference_mode()
    def _one(self, t, batch) -> torch.Tensor:
        sel = batch["labels"] != IGNORE_INDEX
        if isinstance(t, torch.nn.Module):
            dev = next(t.parameters()).device
            b = {k: v.to(dev) for k, v in batch.items()}
            return masked_logits(t, b)[0].float().to(batch["input_ids"].device)
        out = t(batch)  # a cached teacher: top-k per token (+ logsumexp and the gold's logit)
        gold = batch["labels"][sel]
        p = topk_probs(out.topk_values[sel], out.topk_indices[sel], self.vocab,
                       logz=None if out.topk_logz is None else out.topk_logz[sel],
                       target_logit=None if out.topk_target is None else out.topk_target[sel],
                       target_ids=None if out.topk_target is None else gold)
        return p.clamp_min(1e-30).log()  # log-probabilities act as logits (softmax(log p) = p)

    def __call__(self, batch: dict) -> TeacherOut:
        logits = torch.stack([self._one(t, batch) for t in self.teachers]).clone()
        gold = batch["labels"][batch["labels"] != IGNORE_INDEX]
        w = teacher_weights(logits, self.strategy, gold, self.fixed, False, self.sharpness)
        return TeacherOut(logits=logits, weights=w)


class MLMKDObjective(MLMObjective):
    """Student MLM distilled from :class:`MLMTeachers` (see the module doc for the loss)."""

    def __init__(self, student, teachers: MLMTeachers, masker, alpha=0.5, temperature=2.0,
                 tokenizer=None, static: bool = False):
        super().__init__(student, masker, tokenizer, static)
        self.__dict__["teachers"] = teachers  # frozen: not parameters, not checkpointed
        self.specs = {"alpha": alpha, "temperature": temperature}
        self._total = None
        self.on_step_begin(0, 1)  # validates the specs now

    def on_step_begin(self, step: int, total_steps: int) -> None:
        if self._total != total_steps:
            for name, sched in make_checked_schedules(self.specs, total_steps).items():
                setattr(self, name, sched)
            self._total = total_steps
        self.step = step

    def forward(self, batch: dict) -> dict:
        s_logits, gold = masked_logits(self.model, batch)
        alpha, tau = self.alpha(self.step), self.temperature(self.step)
        t = self.teachers(batch)
        terms = {"hard": L.hard_ce_loss(s_logits, gold)}
        if t.logits.shape[0] == 1:
            terms["soft"] = L.soft_kd_loss(s_logits, t.logits[0], temperature=tau)
        else:
            terms["soft"] = L.soft_kd_loss(s_logits, teacher_probs=mix(t.logits, t.weights, tau),
                                           temperature=tau)
            for k in range(t.weights.shape[-1]):
                terms[f"w_teacher{k}"] = t.weights[:, k].mean()
        loss = L.kd_mixture(terms["hard"], terms["soft"], alpha)
        return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}


@torch.inference_mode()
def evaluate_mlm(model, enc, masker, batch_size: int = 64, device=None,
                 progress: bool = False) -> dict:
    """Held-out masked-token loss and accuracy with the fixed (step-free) masks: the same
    positions for every model and every run."""
    from ...train.predict import iter_batches

    was = model.training
    model.eval()
    dev = device or next(model.parameters()).device
    n, loss, correct = 0, 0.0, 0
    for _, batch in iter_batches(enc, batch_size, dev, progress, "evaluate (mlm)",
                                 collate_fn=lambda e, b: masker(e, b, None)):
        logits, gold = masked_logits(model, batch)
        loss += float(torch.nn.functional.cross_entropy(logits.float(), gold, reduction="sum"))
        correct += int((logits.argmax(-1) == gold).sum())
        n += int(gold.numel())
    model.train(was)
    return {"mlm_accuracy": correct / max(n, 1), "mlm_loss": loss / max(n, 1),
            "masked_tokens": n}
