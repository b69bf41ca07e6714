"""Did KD help? The figures ``distill`` logs beside the task metric (issue 9):

- the teacher's own dev metric and calibration (ECE, NLL, a reliability table), once;
- at every evaluation, the student's agreement with the teacher (same argmax) and
  ``kl_to_teacher`` = mean KL(p_T ‖ p_S) at τ = 1 on the dev rows (regression:
  ``mse_to_teacher``), so the report shows the student approaching the teacher over training;
- the no-KD reference (``kd.reference``: a finished run directory, e.g. ``finetune`` of the same
  student init on the same rows), whose primary metric the report sets against the student's;
- the teacher's metric on the labelled rows it teaches on (``teacher_train``), read from its
  cached outputs at no extra cost: a teacher fine-tuned on those very rows often fits them
  almost perfectly, and then its soft targets there say little the gold labels do not — the
  report says so, because it is the usual reason KD barely beats fine-tuning.

With several teachers the diagnosis is against the first one (the mixture has no fixed dev
prediction under gold weighting, which needs the label).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ...errors import ConfigError
from ...train import runner


def run_teacher(call, texts: list, batch_size: int) -> torch.Tensor:
    """A ``texts -> logits`` callable over ``texts`` in batches, as one float tensor."""
    return torch.cat([torch.as_tensor(np.asarray(call(texts[i: i + batch_size])),
                                      dtype=torch.float32)
                      for i in range(0, len(texts), batch_size)])


def agreement(student_logits: np.ndarray, teacher_logits: torch.Tensor,
              regression: bool) -> dict:
    """``teacher_agreement`` (share of rows with the teacher's argmax) and ``kl_to_teacher``
    (mean KL(p_T ‖ p_S), τ = 1); regression: ``mse_to_teacher``."""
    s = torch.as_tensor(np.asarray(student_logits), dtype=torch.float32)
    t = teacher_logits.float()
    if regression:
        return {"mse_to_teacher": float(((s.reshape(-1) - t.reshape(-1)) ** 2).mean())}
    log_pt, log_ps = t.log_softmax(-1), s.log_softmax(-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1).mean()
    return {"teacher_agreement": float((s.argmax(-1) == t.argmax(-1)).float().mean()),
            "kl_to_teacher": float(kl)}


def read_reference(path: str, metric: str) -> dict:
    """The primary metric of a finished no-KD run (its directory or its ``metrics.json``)."""
    p = Path(path)
    f = p / "metrics.json" if p.is_dir() else p
    if not f.is_file():
        raise ConfigError(f"kd.reference '{path}': no metrics.json there (give a finished run "
                          "directory, e.g. a finetune of the same student)")
    try:
        rec = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"kd.reference '{f}' is not valid JSON: {e}") from e
    if metric not in rec:
        raise ConfigError(f"kd.reference '{f}' has no '{metric}' (a run on another task?)")
    return {"path": str(p), "metric": metric, "value": float(rec[metric]),
            "task": rec.get("task")}


def teacher_on_train(task, train, logits: torch.Tensor | None) -> dict:
    """``{"teacher_train": metrics, "teacher_train_rows": n}``: the teacher's task metrics on
    the labelled training rows (rows without a label, e.g. unlabelled or augmented text, are
    left out), from ``TeacherSignal.logits_table()``; {} without logits or labelled rows."""
    rows = [i for i, y in enumerate(train.labels) if y is not None]
    if logits is None or not rows or logits.ndim != 2 or len(logits) != len(train.labels):
        return {}
    sub = train.subset(rows)
    return {"teacher_train": runner.task_metrics(task, logits[rows].float().numpy(), sub),
            "teacher_train_rows": len(rows)}
