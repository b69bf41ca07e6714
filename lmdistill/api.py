"""The Python API behind every CLI command: ``finetune``, ``distill``, ``search`` (AdaBERT), ``metakd``, ``evaluate_wsd``, ``augment``, ``l2a``,
``evaluate``. The CLI only parses arguments and calls these.

A run directory holds::

    config.yaml      the resolved config (a resume must match it)
    metrics.jsonl    training and evaluation records, one JSON object per line
    checkpoints/     atomic resumable checkpoints (see lmdistill.train.checkpoint)
    model/           the best model so far: HF save_pretrained folder + tokenizer
    metrics.json     final metrics of the best model on the eval split
"""

from __future__ import annotations

import time
from pathlib import Path

from . import config as C
from .data.collate import Encoded, encode
from .data.tasks import get_task
from .models import hub
from .train.loop import make_accelerator
from .train.predict import predict
from .train.runner import (best_callback, check_tokenizer, load_encoded,  # noqa: F401
                           load_task, metric_mode, run_training, standard_callbacks,
                           task_metrics, write_json)


# ------------------------------------------------------------------ finetune
def finetune(cfg: C.FinetuneConfig, resume: bool = False) -> dict:
    """Fine-tune ``cfg.model.name`` on ``cfg.data.task``; returns the final metrics."""
    from accelerate.utils import set_seed

    from .data.mlm import is_mlm_task
    from .methods.finetune import SupervisedObjective

    if is_mlm_task(cfg.data.task):
        from .methods.mlm.run import finetune_mlm

        return finetune_mlm(cfg, resume)
    from .augment.cbert import finetune_conditional, is_cbert_task

    if is_cbert_task(cfg.data.task):  # label-conditional CBERT (an MLM for augmentation)
        return finetune_conditional(cfg, resume)
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
                                cfg.model.trust_remote_code, new_head=cfg.model.new_head)
    check_tokenizer(model, tokenizer, cfg.model.name)
    if cfg.model.freeze_encoder:  # a linear probe / head-only training
        for p in getattr(model, model.base_model_prefix).parameters():
            p.requires_grad_(False)
    objective = SupervisedObjective(model, task.is_regression, tokenizer)

    from .models.students import count_params

    return run_training(objective, task, train, dev, cfg, resume, accelerator, t0, {
        "model": cfg.model.name, "params": count_params(model),
        "params_no_emb": count_params(model, without_embeddings=True)})


def distill(cfg: C.DistillConfig, resume: bool = False, teacher_fn=None, extra_texts=None
            ) -> dict:
    """``lmdistill distill`` (see :func:`lmdistill.methods.kd.run.distill`)."""
    from .methods.kd.run import distill as run

    return run(cfg, resume, teacher_fn, extra_texts)


def search(cfg: C.SearchConfig, resume: bool = False) -> dict:
    """``lmdistill search``: AdaBERT (see :mod:`lmdistill.methods.adabert.run`)."""
    from .methods.adabert.run import search as run

    return run(cfg, resume)


def metakd(cfg: C.MetaKDConfig, resume: bool = False) -> dict:
    """``lmdistill metakd`` (see :mod:`lmdistill.methods.metakd.run`)."""
    from .methods.metakd.run import metakd as run

    return run(cfg, resume)


def evaluate_wsd(model: str | None, sets=("SE2", "SE3", "SE07", "SE13", "SE15", "ALL"),
                 data_dir: str | None = None, batch_size: int = 128, max_length: int = 128,
                 progress: bool = False, prior_weights: tuple[float, ...] = (),
                 tune_on: str = "SE07", sense_vectors: str | None = None,
                 encoder: str = "minilm-l6") -> dict:
    """``lmdistill wsd`` (see :func:`lmdistill.methods.lexical.wsd.evaluate_wsd`); with
    ``prior_weights`` also the sense-prior combination, its weight tuned on ``tune_on``
    (``res["prior_tuned"]``). ``sense_vectors``: instead, the nearest-neighbour sense teacher
    in that folder (built from SemCor with ``encoder`` and tuned on held-out SemCor when
    empty; :mod:`lmdistill.methods.lexical.lmms`)."""
    if sense_vectors is not None:
        from .methods.lexical import lmms

        lmms.prepare(sense_vectors, encoder, data_dir, progress=progress)
        return lmms.evaluate_lmms(sense_vectors, sets, data_dir, progress=progress)
    from .methods.lexical.wsd import evaluate_wsd as run
    from .methods.lexical.wsd import tune_prior

    res = run(model, sets, data_dir, batch_size, max_length, progress, tuple(prior_weights))
    if prior_weights and model is not None and tune_on in res["sets"]:
        res["prior_tuned"] = tune_prior(res, tune_on)
    return res


def augment(method: str, output, task: str | None = None, input_file: str | None = None,
            data_dir: str | None = None, split: str = "train", limit: int | None = None,
            n_aug: int = 4, seed: int = 0, mlm: str | None = None) -> dict:
    """``lmdistill augment`` (see :mod:`lmdistill.augment.run`)."""
    from .augment.run import augment as run

    return run(method, output, task, input_file, data_dir, split, limit, n_aug, seed, mlm)


def l2a(cfg: C.L2AConfig, resume: bool = False) -> dict:
    """``lmdistill l2a`` (see :mod:`lmdistill.methods.l2a.run`)."""
    from .methods.l2a.run import l2a as run

    return run(cfg, resume)


# ------------------------------------------------------------------ evaluate
def inference_device(ref: str, accelerator=None):
    """Where a saved model runs: INT8 (torch/torchao) and ONNX Runtime folders are CPU
    models; anything else runs on the accelerator's device (a CUDA GPU when present)."""
    import torch

    from .models.runtimes import is_onnx_dir, method_of

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
    from .data.mlm import is_mlm_task

    if is_mlm_task(task):  # held-out masked-token accuracy / loss (default block settings)
        from .methods.mlm.run import evaluate_mlm_model

        return evaluate_mlm_model(model, task, data_dir, max_blocks=limit,
                                  batch_size=min(batch_size, 64))
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
