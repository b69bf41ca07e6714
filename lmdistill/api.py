"""The Python API behind every CLI command: ``finetune``, ``distill``, ``search`` (AdaBERT), ``metakd``, ``evaluate_wsd``, ``lexical_kd``, ``augment``,
``l2a``, ``evaluate``. The CLI only parses arguments and calls these.

A run directory holds::

    config.yaml      the resolved config (a resume must match it)
    metrics.jsonl    training and evaluation records, one JSON object per line
    checkpoints/     atomic resumable checkpoints (see lmdistill.train.checkpoint)
    model/           the best model so far: HF save_pretrained folder + tokenizer
    metrics.json     final metrics of the best model on the eval split
"""

from __future__ import annotations

import time

from . import config as C
from .data.tasks import get_task
from .models import hub
from .train.loop import make_accelerator
from .methods.evaluate import evaluate, inference_device  # noqa: F401 - the API's
from .train.runner import (check_tokenizer, load_encoded, load_task, run_training,
                           task_metrics, write_json)  # noqa: F401 - task_metrics, write_json:
#                                                       the API's too (scripts use them)


def _with_report(result: dict, out_dir) -> dict:
    """The report of a finished single run, written by the layer that owns the run (the loop's
    runner writes only ``metrics.json``; pipelines write their own report at their end)."""
    import os

    from .report.build import auto_report

    if os.environ.get("LOCAL_RANK", "0") == "0":
        auto_report(out_dir)
    return result


# ------------------------------------------------------------------ finetune
def finetune(cfg: C.FinetuneConfig, resume: bool = False) -> dict:
    """Fine-tune ``cfg.model.name`` on ``cfg.data.task``; returns the final metrics."""
    from accelerate.utils import set_seed

    from .data.mlm import is_mlm_task
    from .methods.finetune import SupervisedObjective

    if is_mlm_task(cfg.data.task):
        from .methods.mlm.run import finetune_mlm

        return _with_report(finetune_mlm(cfg, resume), cfg.output_dir)
    from .augment.cbert import is_cbert_task
    from .methods.mlm.cbert import finetune_conditional

    if is_cbert_task(cfg.data.task):  # label-conditional CBERT (an MLM for augmentation)
        return _with_report(finetune_conditional(cfg, resume), cfg.output_dir)
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

    return _with_report(run_training(objective, task, train, dev, cfg, resume, accelerator, t0, {
        "model": cfg.model.name, "params": count_params(model),
        "params_no_emb": count_params(model, without_embeddings=True)}), cfg.output_dir)


def distill(cfg: C.DistillConfig, resume: bool = False, teacher_fn=None, extra_texts=None
            ) -> dict:
    """``lmdistill distill`` (see :func:`lmdistill.methods.kd.run.distill`)."""
    from .methods.kd.run import distill as run

    return _with_report(run(cfg, resume, teacher_fn, extra_texts), cfg.output_dir)


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
        from .methods.lexical import lmms_tune as lmms

        lmms.prepare(sense_vectors, encoder, data_dir, progress=progress)
        return lmms.evaluate_lmms(sense_vectors, sets, data_dir, progress=progress)
    from .methods.lexical.wsd import evaluate_wsd as run
    from .methods.lexical.wsd import tune_prior

    res = run(model, sets, data_dir, batch_size, max_length, progress, tuple(prior_weights))
    if prior_weights and model is not None and tune_on in res["sets"]:
        res["prior_tuned"] = tune_prior(res, tune_on)
    return res


def lexical_kd(cfg: C.LexicalKDConfig, resume: bool = False) -> dict:
    """``lmdistill lexical-kd`` (see :mod:`lmdistill.methods.lexical.lexkd_run`)."""
    from .methods.lexical.lexkd_run import lexical_kd as run

    return run(cfg, resume)


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
