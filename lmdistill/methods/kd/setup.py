"""The teachers of a ``distill`` run: HF teachers (online or cached on disk), callables, a
logits file, several of them weighted per example, and the layer matches between the (first)
teacher and the student for intermediate-layer KD."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable

import torch

from ... import config as C
from ...errors import ConfigError, ModelError
from ...mapping import Projections, build_matches, resolve_mapping
from ...models import hub
from ...models import students as S
from ...teachers import (CachedTeacher, CallableTeacher, LogitsFileTeacher, MultiTeacher,
                         OnlineTeacher, TeacherSignal, default_cache_dir)
from .diagnosis import run_teacher
from .objective import needs_of


def log(msg: str) -> None:
    """A progress/diagnosis line: on stderr, so the CLI's stdout stays the result JSON."""
    print(msg, file=sys.stderr)


@dataclass
class TeacherSetup:
    """What :func:`build_teachers` makes: the signal the objective reads (one teacher or the
    weighted mixture), each teacher's signal, the HF teacher models, whether each shares the
    student's tokenizer, the layer matches and projections, and the teachers' names."""
    signal: TeacherSignal
    signals: list[TeacherSignal]
    models: list = field(default_factory=list)
    shared: list[bool] = field(default_factory=list)
    matches: list = field(default_factory=list)
    projections: Projections | None = None
    names: list[str] = field(default_factory=list)
    fns: list[Callable] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


def build_teachers(cfg: C.DistillConfig, task, train, tokenizer, student, fns: list,
                   teacher_ids, accelerator) -> TeacherSetup:
    """Every teacher of ``cfg`` (and the callables ``fns``) as a signal over ``train``; with
    ``kd.features``, the layer matches of the one HF teacher with ``student``."""
    names = cfg.teacher.all_names
    matches, projections = [], None
    if cfg.kd.features:
        if cfg.student.kind == "bilstm":
            raise ConfigError("a BiLSTM student has no transformer layers: use logit KD only "
                              "(kd.features=[])")
        if len(names) != 1 or fns or cfg.teacher.logits_file:
            raise ConfigError("intermediate-layer KD needs exactly one HF teacher model "
                              "(teacher.name) sharing the student's tokenizer")
    # ---- teacher signals
    signals: list[TeacherSignal] = []
    t_models, shared = [], []  # shared: the teacher uses the student's tokenizer
    for ref in names:
        t_tok = hub.load_tokenizer(ref, cfg.teacher.trust_remote_code)
        t_model = hub.load_classifier(ref, task.num_labels, task.label_names,
                                      cfg.teacher.trust_remote_code)
        if not any(a.endswith("ForSequenceClassification")
                   for a in t_model.config.architectures or []):
            raise ModelError(f"teacher '{ref}' has no trained classification head: fine-tune "
                             "it first (lmdistill finetune)")
        t_models.append(t_model)
        shared.append(same_vocab(t_tok, tokenizer))
        if not shared[-1]:
            if cfg.kd.features:
                raise ConfigError(f"teacher '{ref}' uses a different tokenizer than the "
                                  "student: intermediate-layer KD needs a shared tokenizer "
                                  "(logit KD works with any)")
            signals.append(CallableTeacher(hf_callable(t_model.to(accelerator.device), t_tok,
                                                       cfg.data.max_length), train))
            signals[-1].ran_on = str(accelerator.device)
            continue
        if cfg.kd.features:
            pairs = resolve_mapping(cfg.kd.mapping, S.num_layers(t_model.config),
                                    S.num_layers(student.config), cfg.kd.include_embeddings)
            matches = build_matches(pairs, cfg.kd.features, cfg.kd.feature_weights or 1.0,
                                    losses=cfg.kd.losses or None)
            projections = Projections(matches, student.config.hidden_size,
                                      t_model.config.hidden_size, keep=cfg.kd.keep_projections)
            if "value_relation" in cfg.kd.features:
                for who, m in (("student", student), ("teacher", t_model)):
                    if m.config.hidden_size % cfg.kd.relation_heads:
                        raise ConfigError(
                            f"kd.relation_heads={cfg.kd.relation_heads} does not divide the "
                            f"{who}'s value width {m.config.hidden_size}; choose a divisor "
                            f"(e.g. its {m.config.num_attention_heads} attention heads)")
        needs = needs_of(matches)
        if cfg.teacher.cache and not cache_fits(train, needs, t_model.config):
            signals.append(OnlineTeacher(t_model.to(accelerator.device), needs))
        elif cfg.teacher.cache:
            if accelerator.is_main_process:
                sig = CachedTeacher(t_model, train, needs, cfg.teacher.cache_dir,
                                    cfg.teacher.batch_size, progress=cfg.train.progress,
                                    device=accelerator.device)
            accelerator.wait_for_everyone()
            if not accelerator.is_main_process:
                sig = CachedTeacher(t_model, train, needs, cfg.teacher.cache_dir,
                                    cfg.teacher.batch_size, progress=False)
            signals.append(sig)
        else:
            signals.append(OnlineTeacher(t_model.to(accelerator.device), needs))
    ids = list(teacher_ids or [])
    if ids and len(ids) != len(fns):
        raise ConfigError(f"teacher_ids names {len(ids)} teachers for {len(fns)} callables")
    for k, f in enumerate(fns):
        # cached only under a name the user gives: a function's own name would not change
        # when the model behind it does, and stale soft targets would go unnoticed
        ident = ids[k] if ids else None
        signals.append(CallableTeacher(f, train, cfg.teacher.cache_dir or default_cache_dir(),
                                       ident, cfg.teacher.batch_size, cfg.train.progress)
                       if cfg.teacher.cache and ident else CallableTeacher(f, train))
    if cfg.teacher.logits_file:
        signals.append(LogitsFileTeacher(cfg.teacher.logits_file, train))
    teacher = signals[0] if len(signals) == 1 else MultiTeacher(
        signals, cfg.teacher.strategy, cfg.teacher.fixed_weights, task.is_regression,
        cfg.teacher.sharpness)

    return TeacherSetup(teacher, signals, t_models, shared, matches, projections, names, fns,
                        ids)


def cache_fits(train, needs, config, share: float = 0.4) -> bool:
    """Whether the teacher's cached features of ``train`` fit in ``share`` of the memory
    available now (they are gathered in memory, then concatenated: twice their size at the
    peak). If not, the teacher runs online (one forward per step) and a line says so, instead
    of the run being killed for memory an hour in."""
    from ...teachers import available_memory, cache_bytes

    if not needs.any:
        return True
    need = 2 * cache_bytes(train, needs, config.hidden_size, config.num_attention_heads)
    free = available_memory()
    if free is None or need <= share * free:
        return True
    log(f"distill: caching the teacher's features for {len(train)} rows needs about "
          f"{need / 2**30:.1f} GiB, more than {share:.0%} of the {free / 2**30:.1f} GiB free: "
          "running the teacher online instead (slower; fewer rows, shorter "
          "data.max_length or fewer kd.features would let it cache)")
    return False


def has_head(ref: str) -> bool:
    """Whether the saved model ``ref`` carries a sequence-classification head."""
    return any(a.endswith("ForSequenceClassification")
               for a in hub.load_config(ref).architectures or [])


def same_vocab(tok_a, tok_b) -> bool:
    return tok_a.get_vocab() == tok_b.get_vocab()


def hf_callable(model, tokenizer, max_length: int, batch_size: int = 64) -> Callable:
    """An HF classifier with its own tokenizer as a ``texts -> logits`` callable."""

    model.eval()

    @torch.inference_mode()
    def fn(texts):
        a = [t[0] if isinstance(t, tuple) else t for t in texts]
        b = [t[1] for t in texts] if texts and isinstance(texts[0], tuple) else None
        x = tokenizer(a, b, truncation=True, max_length=max_length, padding=True,
                      return_tensors="pt")
        dev = next(model.parameters()).device  # the teacher may sit on a GPU
        return model(**{k: v.to(dev) for k, v in x.items()}).logits.float().cpu()

    return fn


def teacher_dev_logits(dev, ref: str | None, model, fn, cfg: C.DistillConfig, device,
                       ident: str | None = None):
    """The (first) teacher's logits on the eval rows (None for a logits-file teacher, which
    has no outputs for them): one pass per run, over the eval rows only; a named callable is
    cached per text like its training rows (it may be a paid API)."""
    texts = [t[0] if t[1] is None else t for t in dev.texts]
    if cfg.teacher.cache and model is None and fn is not None and ident:
        return CallableTeacher(fn, dev, cfg.teacher.cache_dir or default_cache_dir(), ident,
                               cfg.teacher.batch_size).table
    if model is not None:
        call = hf_callable(model.to(device), hub.load_tokenizer(ref), cfg.data.max_length,
                           cfg.teacher.batch_size)
    elif fn is not None:
        call = fn
    else:
        return None
    return run_teacher(call, texts, cfg.teacher.batch_size)
