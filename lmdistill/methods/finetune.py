"""Plain supervised fine-tuning: the objective of ``lmdistill finetune`` (and the no-KD
baseline of every distillation table)."""

from __future__ import annotations

import torch

from ..data.collate import WEIGHT
from ..losses import hard_ce_loss
from ..names import MODEL_INPUTS

def model_inputs(batch: dict) -> dict:
    return {k: batch[k] for k in MODEL_INPUTS if k in batch}


def supervised_loss(logits: torch.Tensor, labels: torch.Tensor, regression: bool,
                    weights: torch.Tensor | None = None) -> torch.Tensor:
    """Gold-label loss: CE over labelled rows (label -100 = none), or MSE over rows with a
    finite target for regression. 0 when the batch has no labelled row. ``weights`` [B]
    (the batch's ``weight`` extra) weight each row, normalised by their sum over the labelled
    rows (the convention of every loss in :mod:`lmdistill.losses`)."""
    if regression:
        ok = torch.isfinite(labels)
        if not ok.any():
            return logits.sum() * 0.0
        err = (logits.squeeze(-1)[ok] - labels[ok].float()) ** 2
        if weights is None:
            return err.mean()
        w = weights[ok].to(err.dtype)
        if not bool(w.sum() > 0):
            raise ValueError("weights sum to zero over the labelled rows")
        return (w * err).sum() / w.sum()
    return hard_ce_loss(logits, labels, weights=weights)


class SupervisedObjective(torch.nn.Module):
    """Cross-entropy on the gold labels (MSE for regression)."""

    def __init__(self, model: torch.nn.Module, regression: bool = False, tokenizer=None):
        super().__init__()
        self.model = model
        self.regression = regression
        self.tokenizer = tokenizer  # not a module: saved with the export, never trained

    def forward(self, batch: dict) -> dict:
        logits = self.model(**model_inputs(batch)).logits
        return {"loss": supervised_loss(logits, batch["labels"], self.regression,
                                        batch.get(WEIGHT))}

    def predict(self, batch: dict) -> torch.Tensor:
        return self.model(**model_inputs(batch)).logits

    def save_pretrained(self, out_dir) -> None:
        from ..models.hub import save_model

        save_model(self.model, out_dir, self.tokenizer)
