"""The run machinery every training command shares (``finetune``, ``distill`` and the methods):
loading a task's splits, the tokenizer check, the task metric, the standard callbacks and
:func:`run_training`, the one loop's tail that writes ``metrics.json`` (the report is written
by the layer that owns the run: :mod:`lmdistill.api` for single runs, each pipeline at its end).

It lives under ``train`` so that methods import it without importing :mod:`lmdistill.api`
(which imports the methods): the API is a thin layer on top, one way.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from .. import config as C
from ..data.collate import Encoded, encode
from ..data.metrics import metric_mode
from ..data.tasks import Task, get_task
from ..errors import DataError, ModelError
from .callbacks import BestModel, EarlyStopping, JsonlLogger, ProgressBar, TensorBoard
from .loop import Trainer
from .predict import predict, to_predictions


def load_task(data: C.DataConfig) -> Task:
    generic = {}
    if data.text_a:
        generic = dict(text_a=data.text_a, text_b=data.text_b, label=data.label,
                       label_names=data.label_names, regression=data.regression,
                       dev_path=data.dev_path)
    return get_task(data.task, data_dir=data.data_dir, **generic)


def load_encoded(task: Task, split: str, tokenizer, max_length: int, limit: int | None = None,
                 seed: int = 0) -> Encoded:
    examples = task.load(split, limit=limit, seed=seed)
    if not examples:
        raise DataError(f"task '{task.name}' split '{split}' has no examples")
    return encode(examples, tokenizer, max_length)


def check_tokenizer(model, tokenizer, ref: str) -> None:
    """A tokenizer whose ids exceed the model's embedding table is the wrong tokenizer."""
    vocab = getattr(model.config, "vocab_size", None)
    if vocab is not None and len(tokenizer) > vocab:
        raise ModelError(f"tokenizer of '{ref}' has {len(tokenizer)} tokens but the model's "
                         f"vocabulary has {vocab}: tokenizer and model do not match")


def task_metrics(task: Task, logits: np.ndarray, enc: Encoded) -> dict:
    if any(lab is None for lab in enc.labels):
        raise DataError(f"task '{task.name}': the evaluation split has no labels")
    preds = to_predictions(logits, task.is_regression)
    groups = enc.extras.get("group")
    scores = None
    if groups is not None:  # the positive class's score ranks a group's candidate rows
        scores = logits.reshape(-1) if task.is_regression else (
            logits[:, 1] - logits[:, 0] if logits.shape[-1] == 2 else logits.max(-1))
    return task.compute_metrics(preds, np.asarray(enc.labels), groups, scores)


def standard_callbacks(out: Path, cfg: C.TrainConfig, primary: str, desc: str) -> list:
    cbs = [ProgressBar(desc), JsonlLogger(out / "metrics.jsonl", cfg.log_every),
           TensorBoard(out / "tensorboard"), BestModel(out / "model", primary, metric_mode(primary))]
    if cfg.early_stopping_patience:
        cbs.append(EarlyStopping(primary, cfg.early_stopping_patience, metric_mode(primary),
                                 {m: metric_mode(m) for m in cfg.early_stopping_also
                                  if m != primary}))
    return cbs


def best_callback(trainer: Trainer) -> BestModel:
    return next(cb for cb in trainer.callbacks if isinstance(cb, BestModel))


def write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def finish_pipeline(out: Path, summary: dict, report) -> dict:
    """The end of a pipeline command: ``metrics.json``, then its report (``report(out,
    summary)``), which never breaks a finished run (one warning line if it fails)."""
    write_json(Path(out) / "metrics.json", summary)
    try:
        report(out, summary)
    except Exception as e:  # noqa: BLE001 - e.g. matplotlib missing
        from ..report.common import log

        log.warning("report for %s not written: %s: %s", out, type(e).__name__,
                    (str(e).splitlines() or [""])[0])
    return summary


def run_training(objective, task: Task, train: Encoded, dev: Encoded, cfg, resume: bool,
                 accelerator, t0: float, extra: dict | None = None,
                 evaluate=None, extra_eval=None) -> dict:
    """The shared tail of every training command: the one loop with the standard callbacks,
    evaluation on ``dev`` by the task metric (or by ``evaluate(trainer) -> metrics``, e.g.
    held-out masked-token accuracy; ``task`` then only needs ``name`` and
    ``primary_metric``) and ``metrics.json``. ``extra_eval(logits) -> metrics``
    adds figures computed from the same dev predictions (e.g. agreement with the teacher)."""
    out = Path(cfg.output_dir)

    def default_evaluate(trainer: Trainer) -> dict:
        trainer.model.eval()
        logits = predict(trainer.unwrapped.predict, dev, cfg.train.eval_batch_size,
                         trainer.accelerator)
        metrics = task_metrics(task, logits, dev)
        return {**metrics, **extra_eval(logits)} if extra_eval else metrics

    evaluate = evaluate or default_evaluate

    trainer = Trainer(objective, train, cfg.train, out, evaluate,
                      standard_callbacks(out, cfg.train, task.primary_metric, cfg.kind),
                      resume=resume, config_yaml=C.to_yaml(cfg), accelerator=accelerator)
    fit = trainer.fit()
    best = best_callback(trainer)
    result = {
        "task": task.name, "split": cfg.data.eval_split, **(extra or {}),
        "best_step": best.best_step, **_best_metrics(out, trainer),
        "train_examples": len(train), "steps": fit["step"],
        "examples_seen": fit["examples_seen"], "world_size": fit["world_size"],
        "device": str(trainer.accelerator.device), "mixed_precision": fit["mixed_precision"],
        **({"precision": fit["precision"]} if fit.get("precision") else {}),
        "stopped": trainer.state.stop_reason or (
            f"ran its whole schedule ({fit['step']} steps, "
            f"{'max_steps' if cfg.train.max_steps else f'{cfg.train.epochs:g} epochs'})"),
        "train_seconds": fit["train_seconds"],
        "train_examples_per_s": fit["train_examples_per_s"],
        "wall_seconds": round(time.time() - t0, 1),
    }
    if trainer.is_main:
        write_json(out / "metrics.json", result)
    return result


def _best_metrics(out: Path, trainer: Trainer) -> dict:
    """Metrics of the best evaluation, read from the log (exact, no re-evaluation)."""
    best = best_callback(trainer)
    log = out / "metrics.jsonl"
    recs = []
    if log.exists():
        recs = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    evals = [r for r in recs if r.get("type") == "eval" and r["step"] == best.best_step]
    if evals:
        return {k: v for k, v in evals[-1].items() if k not in ("type", "step", "epoch")}
    return dict(getattr(trainer, "last_metrics", {}))
