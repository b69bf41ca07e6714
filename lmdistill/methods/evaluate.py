"""``lmdistill evaluate``: a saved model (folder, alias or hub name; INT8 and ONNX folders
too) on a task split, or its predictions on unlabelled texts."""

from __future__ import annotations

import time
from pathlib import Path

from ..data.collate import Encoded, encode
from ..data.tasks import get_task
from ..models import hub
from ..train.loop import make_accelerator
from ..train.predict import predict
from ..train.runner import check_tokenizer, load_encoded, task_metrics


def inference_device(ref: str, accelerator=None):
    """Where a saved model runs: INT8 (torch/torchao) and ONNX Runtime folders are CPU
    models; anything else runs on the accelerator's device (a CUDA GPU when present)."""
    import torch

    from ..models.runtimes import is_onnx_dir, method_of

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
    from ..data.mlm import is_mlm_task

    if is_mlm_task(task):  # held-out masked-token accuracy / loss (default block settings)
        from .mlm.run import evaluate_mlm_model

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
    from .finetune import model_inputs

    t0 = time.time()
    logits = predict(lambda b: m(**model_inputs(b)).logits, enc, batch_size, accelerator,
                     progress=progress, desc="evaluate", device=device)
    return logits, time.time() - t0


def _predict_only(model: str, texts_file: str | None, batch_size: int, max_length: int,
                  trust_remote_code: bool, progress: bool) -> dict:
    from collections import Counter

    from ..data.sample_texts import timing_texts
    from ..data.tasks import Example

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
