"""``lmdistill distill``: build teacher signal(s), a student and the KD objective from a
:class:`~lmdistill.config.DistillConfig`, and train with the one loop."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from ... import config as C
from ...data.collate import encode
from ...data.tasks import Example
from ...errors import ConfigError, ModelError
from ...mapping import Projections, build_matches, resolve_mapping
from ...models import hub
from ...models import students as S
from ...teachers import (CachedTeacher, CallableTeacher, LogitsFileTeacher, MultiTeacher,
                         OnlineTeacher, TeacherSignal, default_cache_dir)
from ...train import runner
from ...train.loop import make_accelerator
from ...report.diagnosis import memorised_note
from .calibration import auto_temperature, calibration
from .diagnosis import agreement, read_reference, run_teacher, teacher_on_train
from .objective import KDObjective, needs_of


def log(msg: str) -> None:
    """A progress/diagnosis line: on stderr, so the CLI's stdout stays the result JSON."""
    print(msg, file=sys.stderr)


def make_student(cfg: C.StudentConfig, base_ref: str, task_name: str, out_dir: str | Path,
                 data_dir: str | None = None) -> dict:
    """Build a student from ``base_ref`` for a task and save it as an HF folder (so e.g. a
    no-KD baseline can be fine-tuned from exactly the initialisation KD starts from)."""
    from ...data.tasks import get_task

    task = get_task(task_name, data_dir=data_dir)
    tokenizer = hub.load_tokenizer(base_ref)
    base = hub.load_classifier(base_ref, task.num_labels, task.label_names)
    student = S.build_student(cfg, base)
    hub.save_model(student, out_dir, tokenizer)
    return {"out": str(out_dir), "params": S.count_params(student),
            "params_no_emb": S.count_params(student, without_embeddings=True)}


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


def distill(cfg: C.DistillConfig, resume: bool = False,
            teacher_fn: Callable | Sequence[Callable] | None = None,
            extra_texts: Sequence[str | tuple[str, str]] | None = None,
            train_examples: list[Example] | None = None,
            objective_factory: Callable[..., KDObjective] | None = None,
            eval_examples: list[Example] | None = None,
            teacher_ids: Sequence[str] | None = None) -> dict:
    """Distil the teacher(s) of ``cfg`` into a student; returns the final metrics.

    ``teacher_fn``: bring-your-own teacher(s): callables ``texts -> logits`` (any tokenizer).
    ``extra_texts``: unlabelled / augmented text added to the training set, labelled by the
    teacher (the soft loss covers it, the hard loss skips it).
    ``train_examples``: the training rows to use instead of the task's train split (e.g. rows
    carrying per-instance ``weight`` extras); the task still gives labels and the eval split.
    ``objective_factory``: a :class:`KDObjective` subclass (or factory) taking the same
    arguments, for methods that add terms (Meta-KD).
    ``eval_examples``: evaluate on these rows instead of the task's eval split (e.g. a held-out
    part of the training rows whose metric is a reward, as in L2A).
    ``teacher_ids``: a name per callable teacher; its outputs are then cached on disk per text
    (``teacher.cache``), so later epochs and runs never call it again for a text it has seen.
    Without names callables are called on every batch (give a new name when the teacher
    behind a callable changes).
    """
    from accelerate.utils import set_seed

    from ...data.mlm import is_mlm_task

    if is_mlm_task(cfg.data.task):
        if teacher_fn is not None or extra_texts:
            raise ConfigError("masked-LM distillation takes HF teachers (teacher.name/names)")
        from ..mlm.run import distill_mlm

        return distill_mlm(cfg, resume)
    t0 = time.time()
    task = runner.load_task(cfg.data)
    accelerator = make_accelerator(cfg.train.mixed_precision)
    set_seed(cfg.train.seed)
    names = cfg.teacher.all_names
    fns = [teacher_fn] if callable(teacher_fn) else list(teacher_fn or [])
    if not names and not fns and not cfg.teacher.logits_file:
        raise ConfigError("no teacher: set teacher.name (or teacher.names, teacher.logits_file)")
    base_ref = cfg.student.base or (names[0] if names else None)
    if base_ref is None:
        raise ConfigError("student.base is needed when the teacher is not an HF model")
    tokenizer = hub.load_tokenizer(base_ref)
    base = hub.load_classifier(base_ref, task.num_labels, task.label_names)
    runner.check_tokenizer(base, tokenizer, base_ref)

    examples = (list(train_examples) if train_examples is not None else
                task.load(cfg.data.train_split, limit=cfg.data.limit, seed=cfg.train.seed))
    extra_texts = (list(extra_texts or []) + split_texts(task, cfg.data)
                   + augmented_texts(examples, cfg))
    if extra_texts:
        examples += [Example(t[0] if isinstance(t, tuple) else t,
                             t[1] if isinstance(t, tuple) else None, None, -1 - i)
                     for i, t in enumerate(extra_texts)]
    train = encode(examples, tokenizer, cfg.data.max_length)
    dev = (encode(list(eval_examples), tokenizer, cfg.data.max_length) if eval_examples
           else runner.load_encoded(task, cfg.data.eval_split, tokenizer, cfg.data.max_length,
                                    cfg.data.eval_limit))

    # ---- the student and the layer matches
    student = S.build_student(cfg.student, base)
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

    head = []  # the teacher's head fits only a student of the same encoder family
    if cfg.student.head_init == "teacher" and shared and shared[0] and not has_head(base_ref):
        head = S.copy_head(student, t_models[0])  # a fresh head would start from noise
    t_dev = teacher_dev_logits(dev, names[0] if names else None,
                               t_models[0] if t_models else None, fns[0] if fns else None,
                               cfg, accelerator.device, ids[0] if ids else None)
    diag = teacher_diagnosis(task, dev, t_dev)
    if len(signals) == 1:  # several teachers: the mixture has no single fit to report
        diag.update(teacher_on_train(task, train, signals[0].logits_table()))
        log_teacher_fit(diag, task.primary_metric)
    temperature = cfg.kd.temperature
    if temperature == "auto":
        temperature, fit = auto_temperature(task, dev, t_dev)
        diag["kd_temperature"] = round(temperature, 4)
        diag["teacher_calibration"].update(fit)
    if cfg.kd.reference:
        diag["nokd_reference"] = read_reference(cfg.kd.reference, task.primary_metric)
    objective = (objective_factory or KDObjective)(
        student, teacher, matches, projections, cfg.kd.alpha, temperature, cfg.kd.beta,
        task.is_regression, cfg.kd.relation_heads, tokenizer, logit_loss=cfg.kd.logit_loss)
    if not cfg.kd.logit_loss and not matches and objective_factory is None:
        raise ConfigError("kd.logit_loss=false leaves no loss: add kd.features")

    def diagnose(logits):  # logged at every evaluation beside the task metric
        return agreement(logits, t_dev, task.is_regression) if t_dev is not None else {}

    return runner.run_training(objective, task, train, dev, cfg, resume, accelerator, t0, {
        "teachers": names + [f"callable{i}" for i in range(len(fns))],
        "student_kind": cfg.student.kind, "student_params": S.count_params(student),
        "student_params_no_emb": S.count_params(student, without_embeddings=True),
        "teacher_params": S.count_params(t_models[0]) if t_models else None,
        "head_from_teacher": len(head), "unlabelled_rows": len(extra_texts),
        "teacher_cache": [getattr(s, "hit", None) for s in signals],
        "teacher_devices": teacher.devices(), **diag},
        extra_eval=diagnose)


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


def log_teacher_fit(diag: dict, metric: str) -> None:
    """One line on how well the teacher fits its training rows, next to its dev figure."""
    tr = (diag.get("teacher_train") or {}).get(metric)
    if tr is None:
        return
    dv = (diag.get("teacher_dev") or {}).get(metric)
    note = memorised_note(tr, dv, metric)
    log(f"distill: the teacher on its {diag['teacher_train_rows']} labelled training rows: "
        f"{metric} {tr:.4f}" + ("" if dv is None else f" (dev {dv:.4f})")
        + (f"; {note}" if note else ""))


def teacher_diagnosis(task, dev, logits) -> dict:
    """The teacher's dev metric and (classification) calibration, for the result/report."""
    if logits is None or any(y is None for y in dev.labels):
        return {}
    out = {"teacher_dev": runner.task_metrics(task, logits.numpy(), dev)}
    if not task.is_regression:
        out["teacher_calibration"] = calibration(logits, torch.tensor(dev.labels))
    return out


def split_texts(task, data: C.DataConfig) -> list:
    """``data.unlabelled_splits``: the texts of those splits, labels dropped (the teacher
    labels them; the hard loss never sees them)."""
    out: list = []
    for split in data.unlabelled_splits:
        if split == data.train_split:
            raise ConfigError(f"data.unlabelled_splits: '{split}' is the training split")
        if split not in task.splits:
            raise ConfigError(f"data.unlabelled_splits: task '{task.name}' has no split "
                              f"'{split}' (it has {', '.join(task.splits)})")
        rows = task.load(split)
        out += [(e.text_a, e.text_b) if e.text_b is not None else e.text_a for e in rows]
        log(f"distill: {len(rows)} unlabelled rows from the '{split}' split (labels dropped)")
    return out


def augmented_texts(examples: list[Example], cfg: C.DistillConfig) -> list:
    """``kd.augment``: ``augment_copies`` EDA / CBERT copies of every labelled training row
    (seeded by ``train.seed``), for the teacher to label: more transfer text than the rows the
    teacher was fine-tuned on, whose soft labels carry little beyond the gold ones."""
    if cfg.kd.augment == "none":
        return []
    from ...augment.run import augment_rows, make_augmenter

    rows = [e for e in examples if e.label is not None]
    aug = make_augmenter(cfg.kd.augment, cfg.data.data_dir, cfg.kd.augment_copies,
                         cfg.kd.augment_mlm)
    made = augment_rows(aug, [(e.text_a, e.text_b) if e.text_b is not None else e.text_a
                              for e in rows], cfg.train.seed, [e.label for e in rows])
    log(f"distill: kd.augment={cfg.kd.augment}: {len(made)} augmented rows from {len(rows)} "
          "training rows (teacher-labelled)")
    return [t for _, t in made]
