"""``lmdistill finetune --task mlm:<corpus>`` (train an MLM: its head on a frozen encoder, or the
whole model) and ``lmdistill distill --task mlm:<corpus> --teacher a --teacher b ...``
(multi-teacher MLM distillation with per-token weighting), both over the one loop.

Evaluation, every ``train.eval_every`` steps and at the end: held-out masked-token accuracy
(``mlm_accuracy``, the model-selection metric) and loss (``mlm_loss``) on the corpus's
held-out blocks with fixed masks. Any encoder works as a teacher base: an encoder-only
checkpoint gets a fresh MLM head (BERT: transform + bias; the decoder is tied to the word
embeddings), a real hub MLM (e.g. ``bert-base-uncased``) keeps its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ... import config as C
from ...data.mlm import WholeWordMasker, load_mlm
from ...errors import ConfigError, ModelError
from ...models import hub
from ...models.hub import load_mlm_model  # noqa: F401 - its old import path
from ...models import students as S
from ...teachers import CachedTeacher
from ...train import runner
from ...train.loop import make_accelerator
from .objective import MLMKDObjective, MLMObjective, MLMTeachers, evaluate_mlm


@dataclass
class MLMCorpus:
    """What the shared run tail needs to know of an MLM "task"."""

    name: str
    primary_metric: str = "mlm_accuracy"


def _data(cfg, tokenizer):
    d = cfg.data
    return load_mlm(d.task, tokenizer, d.mlm_block_size, d.mlm_heldout, d.data_dir,
                    d.mlm_max_blocks)


def _eval_fn(dev, masker, cfg):
    def evaluate(trainer):
        return evaluate_by_domain(trainer.unwrapped.model, dev, masker,
                                  cfg.train.eval_batch_size, trainer.accelerator.device)
    return evaluate


def evaluate_by_domain(model, dev, masker, batch_size: int = 64, device=None) -> dict:
    """:func:`evaluate_mlm` over ``dev``; for a ``|`` corpus also each domain's figures
    (``mlm_accuracy_<domain>``, ``mlm_loss_<domain>``), the overall ones pooled from them
    (one pass over the blocks either way)."""
    parts = dev.by_domain()
    if not parts:
        return evaluate_mlm(model, dev, masker, batch_size, device)
    out, n, loss, correct = {}, 0, 0.0, 0.0
    for d, enc in parts.items():
        r = evaluate_mlm(model, enc, masker, batch_size, device)
        out[f"mlm_accuracy_{d}"], out[f"mlm_loss_{d}"] = r["mlm_accuracy"], r["mlm_loss"]
        n += r["masked_tokens"]
        loss += r["mlm_loss"] * r["masked_tokens"]
        correct += r["mlm_accuracy"] * r["masked_tokens"]
    return {"mlm_accuracy": correct / max(n, 1), "mlm_loss": loss / max(n, 1),
            "masked_tokens": n, **out}


def _freeze_encoder(model) -> int:
    """Freeze everything but the MLM head's own parameters (the decoder weight tied to the
    input embeddings stays frozen with them); returns the number of trainable parameters."""
    base = getattr(model, model.base_model_prefix)
    for p in base.parameters():
        p.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def finetune_mlm(cfg: C.FinetuneConfig, resume: bool = False) -> dict:
    from accelerate.utils import set_seed

    t0 = time.time()
    accelerator = make_accelerator(cfg.train.mixed_precision)
    set_seed(cfg.train.seed)
    tok = hub.load_tokenizer(cfg.model.name, cfg.model.trust_remote_code)
    train, dev = _data(cfg, tok)
    model = load_mlm_model(cfg.model.name, cfg.model.trust_remote_code)
    runner.check_tokenizer(model, tok, cfg.model.name)
    trainable = (_freeze_encoder(model) if cfg.model.freeze_encoder else
                 sum(p.numel() for p in model.parameters()))
    masker = WholeWordMasker(tok, cfg.data.mlm_probability, cfg.data.mlm_seed)
    obj = MLMObjective(model, masker, tok, cfg.data.mlm_static)
    return runner.run_training(obj, MLMCorpus(cfg.data.task), train, dev, cfg, resume,
                               accelerator, t0, {
                                   "model": cfg.model.name, "params": S.count_params(model),
                                   "trainable_params": trainable,
                                   "freeze_encoder": cfg.model.freeze_encoder,
                                   "heldout_blocks": len(dev)},
                               evaluate=_eval_fn(dev, masker, cfg))


def distill_mlm(cfg: C.DistillConfig, resume: bool = False) -> dict:
    from accelerate.utils import set_seed

    t0 = time.time()
    accelerator = make_accelerator(cfg.train.mixed_precision)
    set_seed(cfg.train.seed)
    names = cfg.teacher.all_names
    if not names:
        raise ConfigError("masked-LM distillation needs teacher.name (and teacher.names)")
    if cfg.kd.features:
        raise ConfigError("masked-LM distillation supports logit KD only for now "
                          "(kd.features=[])")
    base_ref = cfg.student.base or names[0]
    tok = hub.load_tokenizer(base_ref)
    train, dev = _data(cfg, tok)
    masker = WholeWordMasker(tok, cfg.data.mlm_probability, cfg.data.mlm_seed)
    teachers = []
    for ref in names:
        t_tok = hub.load_tokenizer(ref, cfg.teacher.trust_remote_code)
        if t_tok.get_vocab() != tok.get_vocab():
            raise ConfigError(f"teacher '{ref}' has another vocabulary than the student: "
                              "token-level KD needs one vocabulary")
        t_model = load_mlm_model(ref, cfg.teacher.trust_remote_code)
        if not any(a.endswith("ForMaskedLM") for a in t_model.config.architectures or []):
            raise ModelError(f"teacher '{ref}' has no trained MLM head: train one first "
                             "(lmdistill finetune --task mlm:<corpus>)")
        t_model.eval()
        if cfg.teacher.cache and cfg.data.mlm_static:
            # fixed masks per block: the teacher sees the same input every epoch, so its
            # top-k logits per token are computed once (see CachedTeacher)
            masked = train.subset(list(range(len(train))))
            masked.input_ids = [masker.mask_one(train.input_ids[i], train.words[i], None,
                                                train.idx[i])[0] for i in range(len(train))]
            teachers.append(CachedTeacher(t_model, masked, cache_dir=cfg.teacher.cache_dir,
                                          batch_size=min(cfg.teacher.batch_size, 16),
                                          progress=cfg.train.progress,
                                          device=accelerator.device, topk=cfg.teacher.topk,
                                          targets=train.input_ids))  # the unmasked tokens
        else:
            teachers.append(t_model.to(accelerator.device))
    signal = MLMTeachers(teachers, len(tok), cfg.teacher.strategy, cfg.teacher.fixed_weights,
                         cfg.teacher.sharpness)
    base = load_mlm_model(base_ref)
    student = _build_student(cfg.student, base)
    obj = MLMKDObjective(student, signal, masker, cfg.kd.alpha, cfg.kd.temperature, tok,
                         cfg.data.mlm_static)
    return runner.run_training(obj, MLMCorpus(cfg.data.task), train, dev, cfg, resume,
                               accelerator, t0, {
                                   "teachers": names, "strategy": cfg.teacher.strategy,
                                   "student_kind": cfg.student.kind,
                                   "student_params": S.count_params(student),
                                   "teacher_cache": [getattr(t, "hit", None) for t in teachers],
                                   "teacher_devices": [
                                       t.ran_on if isinstance(t, CachedTeacher)
                                       else str(next(t.parameters()).device) for t in teachers],
                                   "heldout_blocks": len(dev)},
                               evaluate=_eval_fn(dev, masker, cfg))


def _build_student(scfg: C.StudentConfig, base):
    if scfg.kind in ("bilstm",):
        raise ConfigError("a BiLSTM student cannot be a masked LM; use subset, smaller or shared")
    return S.build_student(scfg, base)


def evaluate_mlm_model(ref: str, corpus: str, data_dir=None, block_size: int = 128,
                       heldout: float = 0.05, probability: float = 0.15, seed: int = 0,
                       max_blocks: int | None = None, batch_size: int = 64) -> dict:
    """Held-out MLM loss / accuracy of a saved masked LM (same split and masks as training
    with the same settings and seed)."""
    tok = hub.load_tokenizer(ref)
    _, dev = load_mlm(corpus, tok, block_size, heldout, data_dir, max_blocks)
    model = load_mlm_model(ref)
    masker = WholeWordMasker(tok, probability, seed)
    return {"model": ref, "corpus": corpus,
            **evaluate_by_domain(model, dev, masker, batch_size)}

