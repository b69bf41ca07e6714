"""The one training loop of lmdistill (on HF Accelerate), used by every method.

What trains is an *objective*: an ``nn.Module`` that owns every trainable parameter (the
model, plus e.g. the projections of intermediate-layer KD) and implements

- ``forward(batch) -> dict`` with a scalar ``"loss"`` and any other scalar terms to log,
- ``predict(batch) -> Tensor`` (logits / predictions used by evaluation),
- ``save_pretrained(out_dir)``  the export (an HF folder) of what the user keeps.

Frozen components (a teacher) are held by the objective outside its parameters, so they are
neither optimised, nor checkpointed, nor wrapped by DDP.

The loop does: seeded length-bucketed batches sharded across processes (every example once
per epoch across ranks), gradient accumulation, clipping, AdamW + warm-up schedule, a NaN
guard, evaluation every N steps and at the end, atomic checkpoints with full RNG and
data-position state, resume, and callbacks (progress, JSON-lines log, TensorBoard, best model,
early stopping).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from ..config import TrainConfig
from ..data.collate import Encoded, collate, length_bucketed_batches, shard_batches
from ..errors import ConfigError, TrainingDiverged
from . import checkpoint as ckpt
from .callbacks import Callback


@dataclass
class TrainState:
    step: int = 0              # optimizer steps done
    epoch: int = 0             # current epoch
    group_in_epoch: int = 0    # optimizer steps done within the current epoch
    steps_per_epoch: int = 1
    examples_seen: int = 0     # on this rank
    train_seconds: float = 0.0  # time inside training steps (no eval/checkpoint)
    last_eval_step: int = -1
    should_stop: bool = False

    @property
    def epoch_float(self) -> float:
        return self.epoch + self.group_in_epoch / max(self.steps_per_epoch, 1)


def resolve_mixed_precision(mode: str = "auto", cpu: bool | None = None) -> str:
    """``auto`` -> ``bf16`` on a CUDA GPU that supports it, else ``no`` (the CPU trains in
    fp32: bf16 autocast there is slower on most CPUs and changes results). ``fp16`` needs CUDA."""
    cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    if mode not in ("auto", "no", "fp16", "bf16"):
        raise ConfigError(f"train.mixed_precision must be auto, no, fp16 or bf16, not '{mode}'")
    if mode == "auto":
        return "bf16" if not cpu and torch.cuda.is_bf16_supported() else "no"
    if mode == "fp16" and cpu:
        raise ConfigError("train.mixed_precision=fp16 needs a CUDA GPU; use bf16 or no on a CPU")
    return mode


def make_accelerator(mixed_precision: str = "no"):
    """CPU unless CUDA is present. ``cpu=True`` matters under ``torchrun``/``accelerate launch``
    on a CPU machine: without it both processes would run full unsharded copies.

    ``mixed_precision`` (``auto | no | fp16 | bf16``, see :func:`resolve_mixed_precision`)
    reaches Accelerate, which autocasts the objective's forward pass (and scales fp16 losses).
    Accelerate keeps one process-wide state; it is reset when the precision changes so that
    several runs with different settings can share a process (tests, notebooks)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    cpu = not torch.cuda.is_available()
    mp = resolve_mixed_precision(mixed_precision, cpu)
    if AcceleratorState._shared_state.get("_mixed_precision", mp) != mp:
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=cpu, mixed_precision=mp)


def param_groups(module: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    def __init__(
        self,
        objective: torch.nn.Module,
        train_data: Encoded,
        cfg: TrainConfig,
        output_dir: str | Path,
        evaluate: Callable[[Trainer], dict] | None = None,
        callbacks: list[Callback] | None = None,
        resume: bool = False,
        config_yaml: str | None = None,
        accelerator=None,
    ):
        self.cfg = cfg
        self.output_dir = Path(output_dir)
        self.ckpt_dir = self.output_dir / "checkpoints"
        self.accelerator = accelerator or make_accelerator(cfg.mixed_precision)
        self.is_main = self.accelerator.is_main_process
        self.objective = objective
        self.train_data = train_data
        self.evaluate_fn = evaluate
        self.callbacks = callbacks or []
        self.resume = resume
        self.config_yaml = config_yaml
        self.state = TrainState()
        self.last_checkpoint: Path | None = None
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)

    # ----------------------------------------------------------------- helpers
    def print(self, msg: str) -> None:
        if self.is_main:
            from tqdm.auto import tqdm

            tqdm.write(msg)

    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def export(self, out_dir: Path) -> None:
        """Save what the user keeps (main process only), atomically replacing ``out_dir``."""
        if not self.is_main:
            return
        import shutil

        out_dir = Path(out_dir)
        tmp = out_dir.with_name(out_dir.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        self.unwrapped.save_pretrained(tmp)
        old = out_dir.with_name(out_dir.name + ".old")
        if out_dir.exists():
            if old.exists():
                shutil.rmtree(old)
            out_dir.rename(old)
        tmp.rename(out_dir)
        if old.exists():
            shutil.rmtree(old)

    def _epoch_groups(self, epoch: int) -> list[list[list[int]]]:
        batches = length_bucketed_batches(self.train_data.lengths, self.cfg.batch_size,
                                          self.cfg.seed, epoch, self.cfg.pool_factor)
        mine = shard_batches(batches, self.accelerator.process_index,
                             self.accelerator.num_processes)
        a = self.cfg.grad_accum
        return [mine[i:i + a] for i in range(0, len(mine), a)]

    def _check_config(self) -> None:
        saved = self.output_dir / "config.yaml"
        if self.config_yaml is None or not saved.exists():
            return
        import yaml

        old, new = yaml.safe_load(saved.read_text()), yaml.safe_load(self.config_yaml)
        diffs = _diff(old, new)
        if diffs:
            raise ConfigError(
                f"cannot resume {self.output_dir}: the config changed ({'; '.join(diffs[:3])}); "
                "use the saved config or a new output dir")

    # ----------------------------------------------------------------- main
    def fit(self) -> dict:
        acc, cfg = self.accelerator, self.cfg
        if len(self.train_data) == 0:
            raise ConfigError("the training set is empty")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.state.steps_per_epoch = len(self._epoch_groups(0))
        total = cfg.max_steps or math.ceil(cfg.epochs * self.state.steps_per_epoch)
        self.total_steps = max(total, 1)

        optimizer = torch.optim.AdamW(param_groups(self.objective, cfg.weight_decay), lr=cfg.lr)
        from transformers import get_scheduler

        sched_name = {"linear": "linear", "constant": "constant_with_warmup",
                      "cosine": "cosine"}[cfg.schedule]
        scheduler = get_scheduler(sched_name, optimizer,
                                  num_warmup_steps=int(cfg.warmup_ratio * self.total_steps),
                                  num_training_steps=self.total_steps)

        if self.resume:
            self._check_config()
            good = ckpt.latest_good(self.ckpt_dir, warn=self.print)
            if good is not None:
                st = ckpt.load_checkpoint(good, self.objective, optimizer, scheduler)
                for cb, cs in zip(self.callbacks, st.pop("callbacks", [])):
                    cb.load_state_dict(cs)
                self.state = TrainState(**st["trainer"])
                self.last_checkpoint = good
                self.print(f"resumed from {good} (step {self.state.step})")
            else:
                self.print(f"nothing to resume in {self.ckpt_dir}; starting from scratch")
        elif ckpt.list_checkpoints(self.ckpt_dir):
            raise ConfigError(f"{self.output_dir} already holds checkpoints; pass --resume to "
                              "continue that run, or choose a new output dir")
        if self.is_main and self.config_yaml is not None:
            (self.output_dir / "config.yaml").write_text(self.config_yaml)

        self.model, self.optimizer = acc.prepare(self.objective, optimizer)
        self.scheduler = scheduler
        for cb in self.callbacks:
            cb.on_train_begin(self)

        t_log, ex_log = time.time(), 0
        while self.state.step < self.total_steps and not self.state.should_stop:
            groups = self._epoch_groups(self.state.epoch)
            while self.state.group_in_epoch < len(groups):
                if self.state.step >= self.total_steps or self.state.should_stop:
                    break
                group = groups[self.state.group_in_epoch]
                t_step = time.time()
                hook = getattr(self.unwrapped, "on_step_begin", None)
                if hook is not None:  # step-dependent objectives (schedules)
                    hook(self.state.step, self.total_steps)
                logs = self._train_step(group)
                self.state.train_seconds += time.time() - t_step
                ex_log += logs.pop("_examples")
                self.state.group_in_epoch += 1
                self.state.step += 1
                now = time.time()
                logs["lr"] = self.scheduler.get_last_lr()[0]
                logs["ex_per_s"] = ex_log * acc.num_processes / max(now - t_log, 1e-9)
                if self.state.step % cfg.log_every == 0:
                    t_log, ex_log = now, 0
                for cb in self.callbacks:
                    cb.on_step_end(self, logs)
                evaluated = False
                if cfg.eval_every and self.state.step % cfg.eval_every == 0:
                    self._evaluate()
                    evaluated = True
                if evaluated or (cfg.save_every and self.state.step % cfg.save_every == 0):
                    self._checkpoint()
            else:
                self.state.epoch += 1
                self.state.group_in_epoch = 0
        if self.state.last_eval_step != self.state.step:
            self._evaluate()
        self._checkpoint()
        for cb in self.callbacks:
            cb.on_train_end(self)
        seen = acc.reduce(torch.tensor(self.state.examples_seen, device=acc.device),
                          "sum").item()
        acc.wait_for_everyone()
        return {"step": self.state.step, "epoch": self.state.epoch_float,
                "examples_seen": int(seen), "world_size": acc.num_processes,
                "train_seconds": round(self.state.train_seconds, 2),
                "train_examples_per_s": round(seen / max(self.state.train_seconds, 1e-9), 2)}

    def _train_step(self, group: list[list[int]]) -> dict:
        acc = self.accelerator
        self.model.train()
        n_micro = len(group)
        sums: dict[str, float] = {}
        n_ex = 0
        for k, idx in enumerate(group):
            batch = {key: v.to(acc.device) for key, v in collate(self.train_data, idx).items()}
            sync = contextlib.nullcontext() if k == n_micro - 1 else acc.no_sync(self.model)
            with sync:
                out = self.model(batch)
                loss = out["loss"]
                if not torch.isfinite(loss):
                    last = self.last_checkpoint or "none yet"
                    raise TrainingDiverged(
                        f"loss is {loss.item()} at step {self.state.step + 1}; stopped. "
                        f"Last good checkpoint: {last}")
                acc.backward(loss / n_micro)
            for key, v in out.items():
                sums[key] = sums.get(key, 0.0) + float(v.detach()) / n_micro
            n_ex += len(idx)
        if self.cfg.max_grad_norm:
            sums["grad_norm"] = float(acc.clip_grad_norm_(self.model.parameters(),
                                                          self.cfg.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.examples_seen += n_ex
        sums["_examples"] = n_ex
        return sums

    def _evaluate(self) -> None:
        if self.evaluate_fn is None:
            return
        metrics = self.evaluate_fn(self)
        self.state.last_eval_step = self.state.step
        for cb in self.callbacks:
            cb.on_evaluate(self, metrics)
        self.last_metrics = metrics

    def _checkpoint(self) -> None:
        acc = self.accelerator
        acc.wait_for_everyone()
        if self.is_main:
            state = {"trainer": asdict(self.state),
                     "callbacks": [cb.state_dict() for cb in self.callbacks]}
            self.last_checkpoint = ckpt.save_checkpoint(
                self.ckpt_dir, self.state.step, self.unwrapped, self.optimizer, self.scheduler,
                state, keep=self.cfg.keep_checkpoints)
        acc.wait_for_everyone()


def _diff(old, new, prefix="") -> list[str]:
    out = []
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            out += _diff(old.get(k), new.get(k), f"{prefix}{k}.")
    elif old != new:
        out.append(f"{prefix.rstrip('.')}: {json.dumps(old)} -> {json.dumps(new)}")
    return out
