"""The Python API behind every CLI command: ``finetune``, ``evaluate`` (and, from the
distillation modules, ``distill``). The CLI only parses arguments and calls these.

A run directory holds::

    config.yaml      the resolved config (a resume must match it)
    metrics.jsonl    training and evaluation records, one JSON object per line
    checkpoints/     atomic resumable checkpoints (see lmdistill.train.checkpoint)
    model/           the best model so far: HF save_pretrained folder + tokenizer
    metrics.json     final metrics of the best model on the eval split
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from . import config as C
from .data.collate import Encoded, encode
from .data.tasks import Task, get_task
from .errors import DataError, ModelError
from .models import hub
from .train.callbacks import BestModel, EarlyStopping, JsonlLogger, ProgressBar, TensorBoard
from .train.loop import Trainer, make_accelerator
from .train.predict import predict, to_predictions


# ------------------------------------------------------------------ data helpers
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


def metric_mode(metric: str) -> str:
    return "min" if metric in ("loss", "mse", "mae") else "max"


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
        cbs.append(EarlyStopping(primary, cfg.early_stopping_patience, metric_mode(primary)))
    return cbs


def best_callback(trainer: Trainer) -> BestModel:
    return next(cb for cb in trainer.callbacks if isinstance(cb, BestModel))


def write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


# ------------------------------------------------------------------ finetune
def finetune(cfg: C.FinetuneConfig, resume: bool = False) -> dict:
    """Fine-tune ``cfg.model.name`` on ``cfg.data.task``; returns the final metrics."""
    from accelerate.utils import set_seed

    from .methods.finetune import SupervisedObjective

    t0 = time.time()
    task = load_task(cfg.data)
    accelerator = make_accelerator(cfg.train.mixed_precision)
    set_seed(cfg.train.seed)
    tokenizer = hub.load_tokenizer(cfg.model.name, cfg.model.trust_remote_code)
    train = load_encoded(task, cfg.data.train_split, tokenizer, cfg.data.max_length,
                         cfg.data.limit, cfg.train.seed)
    dev = load_encoded(task, cfg.data.eval_split, tokenizer, cfg.data.max_length,
                       cfg.data.eval_limit)  # eval subsets use a fixed seed: comparable runs
    model = hub.load_classifier(cfg.model.name, task.num_labels, task.label_names,
                                cfg.model.trust_remote_code)
    check_tokenizer(model, tokenizer, cfg.model.name)
    objective = SupervisedObjective(model, task.is_regression, tokenizer)

    from .models.students import count_params

    return run_training(objective, task, train, dev, cfg, resume, accelerator, t0, {
        "model": cfg.model.name, "params": count_params(model),
        "params_no_emb": count_params(model, without_embeddings=True)})


def run_training(objective, task: Task, train: Encoded, dev: Encoded, cfg, resume: bool,
                 accelerator, t0: float, extra: dict | None = None) -> dict:
    """The shared tail of every training command: the one loop with the standard callbacks,
    evaluation on ``dev`` by the task metric, ``metrics.json`` and the report."""
    out = Path(cfg.output_dir)

    def evaluate(trainer: Trainer) -> dict:
        trainer.model.eval()
        logits = predict(trainer.unwrapped.predict, dev, cfg.train.eval_batch_size,
                         trainer.accelerator)
        return task_metrics(task, logits, dev)

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
        "device": str(accelerator.device), "mixed_precision": accelerator.mixed_precision,
        "train_seconds": fit["train_seconds"],
        "train_examples_per_s": fit["train_examples_per_s"],
        "wall_seconds": round(time.time() - t0, 1),
    }
    if trainer.is_main:
        write_json(out / "metrics.json", result)
        from .report.build import auto_report

        auto_report(out)
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


# ------------------------------------------------------------------ evaluate
def inference_device(ref: str, accelerator=None):
    """Where a saved model runs: INT8 (torch/torchao) and ONNX Runtime folders are CPU
    models; anything else runs on the accelerator's device (a CUDA GPU when present)."""
    import torch

    from .compress.onnx import is_onnx_dir
    from .compress.quantize import method_of

    path = hub.resolve(ref)
    if Path(path).is_dir() and (is_onnx_dir(path) or method_of(path)):
        return torch.device("cpu")
    return accelerator.device if accelerator is not None else torch.device("cpu")


def evaluate(model: str, task: str | None, split: str = "dev", data_dir: str | None = None,
             limit: int | None = None, batch_size: int = 128, max_length: int = 128,
             trust_remote_code: bool = False, progress: bool = True,
             texts_file: str | None = None) -> dict:
    """Evaluate a saved model (folder, alias or hub name) on a task split.

    With ``texts_file`` (one text a line, a tab before a pair's second sentence), or with no
    task, there are no labels: the model predicts those texts (or lmdistill's built-in
    sentences) and the result has the predicted-label counts and the speed, not metrics."""
    if texts_file is not None or task is None:
        return _predict_only(model, texts_file, batch_size, max_length, trust_remote_code,
                             progress)
    t = get_task(task, data_dir=data_dir)
    tokenizer = hub.load_tokenizer(model, trust_remote_code)
    m = hub.load_classifier(model, t.num_labels, t.label_names, trust_remote_code)
    check_tokenizer(m, tokenizer, model)
    m.eval()
    enc = load_encoded(t, split, tokenizer, max_length, limit)
    logits, secs = _run_predict(model, m, enc, batch_size, progress)
    metrics = task_metrics(t, logits, enc)
    return {"task": t.name, "split": split, "model": model, "examples": len(enc), **metrics,
            "seconds": round(secs, 2)}


def _run_predict(ref: str, m, enc: Encoded, batch_size: int, progress: bool):
    accelerator = make_accelerator()
    device = inference_device(ref, accelerator)
    m = m.to(device)  # an ONNX session stays on the CPU (its .to is a no-op)
    from .methods.finetune import model_inputs

    t0 = time.time()
    logits = predict(lambda b: m(**model_inputs(b)).logits, enc, batch_size, accelerator,
                     progress=progress, desc="evaluate", device=device)
    return logits, time.time() - t0


def _predict_only(model: str, texts_file: str | None, batch_size: int, max_length: int,
                  trust_remote_code: bool, progress: bool) -> dict:
    from collections import Counter

    from .data.sample_texts import timing_texts
    from .data.tasks import Example

    texts, source = timing_texts(None, texts_file=texts_file)
    tokenizer = hub.load_tokenizer(model, trust_remote_code)
    m = hub.load_classifier(model, trust_remote_code=trust_remote_code)
    check_tokenizer(m, tokenizer, model)
    m.eval()
    enc = encode([Example(a, b, None, i) for i, (a, b) in enumerate(texts)], tokenizer,
                 max_length)
    logits, secs = _run_predict(model, m, enc, batch_size, progress)
    names = getattr(m.config, "id2label", None) or {}
    out = {"model": model, "texts": source, "examples": len(enc),
           "note": "no labels: predictions and speed only, no metrics",
           "seconds": round(secs, 2), "examples_per_s": round(len(enc) / max(secs, 1e-9), 1)}
    if logits.shape[-1] == 1:
        out["mean_prediction"] = float(logits.mean())
    else:
        counts = Counter(int(i) for i in logits.argmax(-1))
        out["predicted"] = {str(names.get(k, k)): v for k, v in sorted(counts.items())}
    return out
