"""Callbacks of the training loop: each a small class with no-op hooks it overrides.

A callback that must survive a resume returns its state from ``state_dict`` (JSON-able) and
takes it back in ``load_state_dict``; the loop stores it inside every checkpoint.
Only the main process writes files or draws progress bars.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .loop import Trainer


class Callback:
    def on_train_begin(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer, logs: dict) -> None: ...
    def on_evaluate(self, trainer: Trainer, metrics: dict) -> None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...
    def state_dict(self) -> dict:
        return {}
    def load_state_dict(self, state: dict) -> None: ...


class ProgressBar(Callback):
    """tqdm bar over optimizer steps showing loss and examples/s."""

    def __init__(self, desc: str = "train"):
        self.desc = desc
        self.bar = None

    def on_train_begin(self, trainer):
        if not trainer.is_main or not trainer.cfg.progress:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=trainer.total_steps, initial=trainer.state.step, desc=self.desc,
                        dynamic_ncols=True, leave=True)

    def on_step_end(self, trainer, logs):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}", ex_s=f"{logs.get('ex_per_s', 0):.0f}")

    def on_evaluate(self, trainer, metrics):
        if self.bar is not None:
            self.bar.write(f"step {trainer.state.step}: " +
                           ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                                     if isinstance(v, float)))

    def on_train_end(self, trainer):
        if self.bar is not None:
            self.bar.close()


class JsonlLogger(Callback):
    """Appends one JSON object per logged step / evaluation to ``metrics.jsonl``.

    After a resume, records past the resumed step (written by the killed run after its last
    checkpoint) are dropped so the log has each step exactly once.
    """

    def __init__(self, path: Path, every: int = 10):
        self.path = Path(path)
        self.every = every
        self.t0 = time.time()

    def on_train_begin(self, trainer):
        if not trainer.is_main:
            return
        if self.path.exists() and trainer.state.step > 0:
            keep = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= trainer.state.step]
            self.path.write_text("".join(ln + "\n" for ln in keep))
        elif trainer.state.step == 0:
            self.path.write_text("")
            if trainer.state.precision is not None:  # mixed_precision=auto's CPU choice
                self._write({"type": "precision", "step": 0, **trainer.state.precision})

    def _write(self, rec):
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def on_step_end(self, trainer, logs):
        if trainer.is_main and (trainer.state.step % self.every == 0 or trainer.state.step == 1):
            self._write({"type": "train", "step": trainer.state.step,
                         "epoch": round(trainer.state.epoch_float, 4), **logs})

    def on_evaluate(self, trainer, metrics):
        if trainer.is_main:
            self._write({"type": "eval", "step": trainer.state.step,
                         "epoch": round(trainer.state.epoch_float, 4), **metrics})


class TensorBoard(Callback):
    """Scalars to TensorBoard, if ``tensorboard`` is installed (silently off otherwise)."""

    def __init__(self, log_dir: Path):
        self.writer = None
        self.log_dir = log_dir

    def on_train_begin(self, trainer):
        if not trainer.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 - optional
            return
        self.writer = SummaryWriter(str(self.log_dir))

    def on_step_end(self, trainer, logs):
        if self.writer:
            for k, v in logs.items():
                self.writer.add_scalar(f"train/{k}", v, trainer.state.step)

    def on_evaluate(self, trainer, metrics):
        if self.writer:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self.writer.add_scalar(f"eval/{k}", v, trainer.state.step)

    def on_train_end(self, trainer):
        if self.writer:
            self.writer.close()


class BestModel(Callback):
    """Keeps the best model so far (by the task's primary metric) as an HF folder.

    The export itself is the objective's ``save_pretrained``; this callback decides when.
    """

    def __init__(self, out_dir: Path, metric: str, mode: str = "max"):
        self.out_dir = Path(out_dir)
        self.metric = metric
        self.mode = mode
        self.best: float | None = None
        self.best_step: int | None = None

    def improved(self, value: float) -> bool:
        if value is None or math.isnan(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_evaluate(self, trainer, metrics):
        value = metrics.get(self.metric)
        if self.improved(value):
            self.best, self.best_step = value, trainer.state.step
            trainer.export(self.out_dir)

    def state_dict(self):
        return {"best": self.best, "best_step": self.best_step}

    def load_state_dict(self, state):
        self.best, self.best_step = state.get("best"), state.get("best_step")


class EarlyStopping(Callback):
    """Stops after ``patience`` evaluations in which neither ``metric`` nor any of ``also``
    (e.g. the student's agreement with its teacher) improved on its best so far; the reason
    goes to the log and to ``trainer.state.stop_reason``."""

    def __init__(self, metric: str, patience: int, mode: str = "max",
                 also: dict[str, str] | None = None):
        self.modes = {metric: mode, **(also or {})}  # metric -> "max" / "min"
        self.metric, self.patience = metric, patience
        self.best: dict[str, float] = {}
        self.bad = 0

    def on_evaluate(self, trainer, metrics):
        seen = {k: metrics[k] for k in self.modes if metrics.get(k) is not None}
        if not seen:
            return
        improved = [k for k, v in seen.items() if k not in self.best or (
            v > self.best[k] if self.modes[k] == "max" else v < self.best[k])]
        for k in improved:
            self.best[k] = seen[k]
        if improved:
            self.bad = 0
            return
        self.bad += 1
        if self.bad >= self.patience and trainer.state.step < getattr(trainer, "total_steps",
                                                                      float("inf")):
            trainer.state.should_stop = True  # (at the last step the schedule ends anyway)
            best = ", ".join(f"{k} {v:.4f}" for k, v in self.best.items())
            trainer.state.stop_reason = (
                f"early stopping at step {trainer.state.step}: no improvement of "
                f"{' or '.join(self.modes)} in {self.patience} evaluations (best {best})")
            trainer.print(trainer.state.stop_reason)

    def state_dict(self):
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state):
        best = state.get("best")
        self.best = best if isinstance(best, dict) else (
            {} if best is None else {self.metric: best})  # checkpoints before "also"
        self.bad = state.get("bad", 0)
