"""``lmdistill distill``: build teacher signal(s), a student and the KD objective from a
:class:`~lmdistill.config.DistillConfig`, and train with the one loop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from ... import config as C
from ...data.collate import encode
from ...data.tasks import Example
from ...errors import ConfigError
from ...models import hub
from ...models import students as S
from ...train import runner
from ...train.loop import make_accelerator
from ...report.diagnosis import memorised_note
from .calibration import auto_temperature, calibration
from .diagnosis import agreement, read_reference, teacher_on_train
from .objective import KDObjective
from .setup import TeacherSetup, build_teachers, has_head, log, teacher_dev_logits


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
    fns = [teacher_fn] if callable(teacher_fn) else list(teacher_fn or [])
    base_ref, tokenizer, base = student_base(cfg, task, fns)
    train, dev, n_extra = transfer_rows(cfg, task, tokenizer, train_examples, extra_texts,
                                        eval_examples)
    student = S.build_student(cfg.student, base)
    ts = build_teachers(cfg, task, train, tokenizer, student, fns, teacher_ids, accelerator)
    head = start_head(cfg, student, ts, base_ref)
    diag, temperature, t_dev = diagnose_teacher(cfg, task, train, dev, ts, accelerator)
    objective = (objective_factory or KDObjective)(
        student, ts.signal, ts.matches, ts.projections, cfg.kd.alpha, temperature, cfg.kd.beta,
        task.is_regression, cfg.kd.relation_heads, tokenizer, logit_loss=cfg.kd.logit_loss)
    if not cfg.kd.logit_loss and not ts.matches and objective_factory is None:
        raise ConfigError("kd.logit_loss=false leaves no loss: add kd.features")

    def diagnose(logits):  # logged at every evaluation beside the task metric
        return agreement(logits, t_dev, task.is_regression) if t_dev is not None else {}

    return runner.run_training(objective, task, train, dev, cfg, resume, accelerator, t0, {
        "teachers": ts.names + [f"callable{i}" for i in range(len(ts.fns))],
        "student_kind": cfg.student.kind, "student_params": S.count_params(student),
        "student_params_no_emb": S.count_params(student, without_embeddings=True),
        "teacher_params": S.count_params(ts.models[0]) if ts.models else None,
        "head_from_teacher": len(head), "unlabelled_rows": n_extra,
        "teacher_cache": [getattr(x, "hit", None) for x in ts.signals],
        "teacher_devices": ts.signal.devices(), **diag},
        extra_eval=diagnose)


def student_base(cfg: C.DistillConfig, task, fns: list) -> tuple[str, object, object]:
    """``(reference, tokenizer, model)`` the student is built from: ``student.base`` or the
    first HF teacher."""
    names = cfg.teacher.all_names
    if not names and not fns and not cfg.teacher.logits_file:
        raise ConfigError("no teacher: set teacher.name (or teacher.names, teacher.logits_file)")
    base_ref = cfg.student.base or (names[0] if names else None)
    if base_ref is None:
        raise ConfigError("student.base is needed when the teacher is not an HF model")
    tokenizer = hub.load_tokenizer(base_ref)
    base = hub.load_classifier(base_ref, task.num_labels, task.label_names)
    runner.check_tokenizer(base, tokenizer, base_ref)
    return base_ref, tokenizer, base


def transfer_rows(cfg: C.DistillConfig, task, tokenizer, train_examples, extra_texts,
                  eval_examples):
    """``(train, dev, n_extra)``: the labelled training rows plus every unlabelled text the
    teacher labels (given texts, ``data.unlabelled_splits``, ``kd.augment``), and the eval
    rows, encoded."""
    examples = (list(train_examples) if train_examples is not None else
                task.load(cfg.data.train_split, limit=cfg.data.limit, seed=cfg.train.seed))
    extra = (list(extra_texts or []) + split_texts(task, cfg.data)
             + augmented_texts(examples, cfg))
    examples += [Example(t[0] if isinstance(t, tuple) else t,
                         t[1] if isinstance(t, tuple) else None, None, -1 - i)
                 for i, t in enumerate(extra)]
    train = encode(examples, tokenizer, cfg.data.max_length)
    dev = (encode(list(eval_examples), tokenizer, cfg.data.max_length) if eval_examples
           else runner.load_encoded(task, cfg.data.eval_split, tokenizer, cfg.data.max_length,
                                    cfg.data.eval_limit))
    return train, dev, len(extra)


def start_head(cfg: C.DistillConfig, student, ts: TeacherSetup, base_ref: str) -> list:
    """A student whose base has no head for the task starts from the teacher's head (same
    encoder family only): the names of the copied tensors."""
    if cfg.student.head_init == "teacher" and ts.shared and ts.shared[0] \
            and not has_head(base_ref):
        return S.copy_head(student, ts.models[0])  # a fresh head would start from noise
    return []


def diagnose_teacher(cfg: C.DistillConfig, task, train, dev, ts: TeacherSetup, accelerator):
    """``(diag, temperature, teacher dev logits)``: the teacher's dev metric, calibration and
    fit on its training rows, the no-KD reference, and τ (``kd.temperature=auto`` fitted)."""
    ids = ts.ids
    t_dev = teacher_dev_logits(dev, ts.names[0] if ts.names else None,
                               ts.models[0] if ts.models else None,
                               ts.fns[0] if ts.fns else None, cfg, accelerator.device,
                               ids[0] if ids else None)
    diag = teacher_diagnosis(task, dev, t_dev)
    if len(ts.signals) == 1:  # several teachers: the mixture has no single fit to report
        diag.update(teacher_on_train(task, train, ts.signals[0].logits_table()))
        log_teacher_fit(diag, task.primary_metric)
    temperature = cfg.kd.temperature
    if temperature == "auto":
        temperature, fit = auto_temperature(task, dev, t_dev, log)
        diag["kd_temperature"] = round(temperature, 4)
        diag["teacher_calibration"].update(fit)
    if cfg.kd.reference:
        diag["nokd_reference"] = read_reference(cfg.kd.reference, task.primary_metric)
    return diag, temperature, t_dev


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
