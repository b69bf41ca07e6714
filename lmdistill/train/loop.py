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

Extension points (all optional; an objective without them trains exactly as above):

- ``configure_optimizers(cfg, total_steps) -> {name: (optimizer, scheduler | None)}``: several
  optimizers (e.g. AdaBERT's weights and architecture logits); :func:`make_optimizer` builds
  the default recipe for any parameter set. Every optimizer and scheduler is checkpointed.
- ``training_step(trainer, group) -> dict`` replaces the default step (forward, backward,
  clip, one optimizer step). It uses :meth:`Trainer.batch`, :meth:`Trainer.next_batch` (a
  second data stream, e.g. held-out rows for architecture steps), :meth:`Trainer.backward`
  and :meth:`Trainer.step_optimizer`; it returns the scalars to log (``"loss"`` required).
- ``streams() -> {name: Encoded}``: extra data streams for :meth:`Trainer.next_batch`; their
  positions are saved in checkpoints, so a resumed run reads the same batches.
- ``collate(enc, indices) -> batch``: replaces the default padding collate (e.g. dynamic
  masking for masked-LM); it must be a pure function of its inputs and ``self.step`` (set by
  ``on_step_begin``) so that a resumed run sees the same batches.
- ``on_step_begin(step, total_steps)``: step-dependent schedules.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
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
from .optim import make_optimizer, param_groups  # noqa: F401 - the loop's default recipe
from .precision import (BF16_MIN_SPEEDUP, BF16_MIN_STEP_S, _precision_message,  # noqa: F401
                        _precision_name, choose_cpu_precision, make_accelerator,
                        preserved_state, probe_cpu_precision, resolve_mixed_precision)


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
    stop_reason: str = ""        # why training stopped before the end of its schedule
    streams: dict = None         # extra stream name -> [epoch, position]
    precision: dict = None       # mixed_precision=auto on a CPU: the choice and its timings

    def __post_init__(self):
        if self.streams is None:
            self.streams = {}

    @property
    def epoch_float(self) -> float:
        return self.epoch + self.group_in_epoch / max(self.steps_per_epoch, 1)


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
        self.collate_fn = getattr(objective, "collate", None) or collate
        self.streams: dict[str, Encoded] = dict(getattr(objective, "streams", dict)() or {})
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)

    # ----------------------------------------------------------------- helpers
    def print(self, msg: str) -> None:
        if self.is_main:
            from tqdm.auto import tqdm

            tqdm.write(msg, file=sys.stderr)  # beside the bars; stdout keeps the CLI's JSON

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
        total = cfg.max_steps or max(math.ceil(cfg.epochs * self.state.steps_per_epoch),
                                     cfg.min_steps or 0)
        self.total_steps = max(total, 1)

        hook = getattr(self.objective, "configure_optimizers", None)
        opts = (hook(cfg, self.total_steps) if hook is not None
                else {"main": make_optimizer(self.objective, cfg, self.total_steps)})
        if not opts:
            raise ConfigError("configure_optimizers returned no optimizer")
        optimizers = {k: v[0] for k, v in opts.items()}
        self.schedulers = {k: v[1] for k, v in opts.items()}

        if self.resume:
            self._check_config()
            good = ckpt.latest_good(self.ckpt_dir, warn=self.print)
            if good is not None:
                st = ckpt.load_checkpoint(good, self.objective, optimizers, self.schedulers,
                                          rank=self.accelerator.process_index)
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

        self._choose_precision()  # may replace the accelerator (auto on a bf16 CPU)
        acc = self.accelerator
        names = list(optimizers)
        prepared = acc.prepare(self.objective, *optimizers.values())
        self.model = prepared[0]
        self.optimizers = dict(zip(names, prepared[1:]))
        self.optimizer = self.optimizers[names[0]]  # the first is the main one (lr is logged)
        self.scheduler = self.schedulers[names[0]]
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
                custom = getattr(self.unwrapped, "training_step", None)
                self.model.train()
                self._n_ex = 0  # training examples collated by this step (Trainer.batch)
                if custom is not None:
                    # every step starts from zero gradients: a backward for one optimizer's
                    # step also fills the other group's .grad, which must not leak into its
                    # next step (it would, and a resumed run would then differ)
                    self.model.zero_grad(set_to_none=True)
                    logs = dict(custom(self, group))
                    if "loss" not in logs:
                        raise ConfigError("training_step must return a dict with 'loss'")
                    logs = {k: float(v) for k, v in logs.items()}
                else:
                    logs = self._train_step(group)
                self.state.examples_seen += self._n_ex
                self.state.train_seconds += time.time() - t_step
                ex_log += self._n_ex
                self.state.group_in_epoch += 1
                self.state.step += 1
                now = time.time()
                if self.scheduler is not None:
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
                if (cfg.eval_each_epoch and self.state.step < self.total_steps
                        and self.state.last_eval_step != self.state.step):
                    self._evaluate()  # early stopping may decide here
                    self._checkpoint()
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
                "train_examples_per_s": round(seen / max(self.state.train_seconds, 1e-9), 2),
                "mixed_precision": acc.mixed_precision, "precision": self.state.precision}

    # ----------------------------------------------------------------- precision
    def _probe_batch(self) -> dict:
        """A real batch of the run for the precision probe: of the full-size (micro-)batches of
        the first epoch sorted by padded length, the one at the median of their tokens (half
        the tokens, and so most of the time, are in batches up to it: a short-text set's
        median batch would under-state the long batches that cost the most)."""
        batches = [b for g in self._epoch_groups(0) for b in g]
        size = max(len(b) for b in batches)
        lengths = self.train_data.lengths
        full = sorted(((max(lengths[i] for i in b), b) for b in batches if len(b) == size),
                      key=lambda x: (x[0], x[1][0]))
        half, seen = sum(n for n, _ in full) / 2, 0
        for n, idx in full:
            seen += n
            if seen >= half:
                break
        return {k: v.to(self.accelerator.device)
                for k, v in self.collate_fn(self.train_data, idx).items()}

    def _choose_precision(self) -> None:
        """``train.mixed_precision=auto`` on a CPU: fp32, unless the CPU has bf16 arithmetic
        and a bf16 training step of this run's objective on one of its batches is
        :data:`BF16_MIN_SPEEDUP`× faster (:func:`probe_cpu_precision`, which leaves weights
        and RNG untouched). The choice and both timings go to the log, the checkpoints (a
        resumed run keeps it), ``metrics.jsonl`` and the result. Explicit settings and CUDA
        keep the accelerator as it was made."""
        from ..hardware import BF16_FLAGS, ISA_FLAGS, cpu_has_bf16, cpu_info, machine_info, \
            machine_line

        acc, cfg = self.accelerator, self.cfg
        if cfg.mixed_precision != "auto" or acc.device.type != "cpu":
            return
        rec = self.state.precision
        if rec is not None:
            self.print(f"train.mixed_precision=auto: {_precision_name(rec['choice'])}, as "
                       "chosen when this run started")
        elif not cpu_has_bf16():
            rec = {"choice": "no", "reason": "the CPU reports no AVX-512-BF16 or AMX-BF16"}
        else:
            hook = getattr(self.objective, "on_step_begin", None)
            if hook is not None:
                hook(self.state.step, self.total_steps)
            try:
                rec = probe_cpu_precision(self.objective, self._probe_batch(), lr=cfg.lr,
                                          max_grad_norm=cfg.max_grad_norm)
            except Exception as e:  # noqa: BLE001 - said in the log and the result
                rec = {"choice": "no", "fp32_step_s": None, "bf16_step_s": None,
                       "reason": f"the probe failed: {type(e).__name__}: {e}"}
            if acc.num_processes > 1:  # every rank must take the same precision (a failed
                # probe anywhere -> NaN -> fp32 everywhere)
                t = acc.reduce(torch.tensor(
                    [float("nan") if rec[k] is None else rec[k]
                     for k in ("fp32_step_s", "bf16_step_s")],
                    dtype=torch.float64, device=acc.device), "mean").tolist()
                rec["choice"] = choose_cpu_precision(t[0], t[1], rec.get("min_speedup"),
                                                     rec.get("min_step_s"))
                if math.isfinite(t[0] + t[1]):
                    rec.update(fp32_step_s=round(t[0], 4), bf16_step_s=round(t[1], 4),
                               speedup=round(t[0] / t[1], 3), ranks=acc.num_processes)
                elif "reason" not in rec:
                    rec = {"choice": "no", "fp32_step_s": None, "bf16_step_s": None,
                           "reason": "the probe failed on another rank"}
            if "reason" not in rec and rec["fp32_step_s"] < rec["min_step_s"]:
                rec["reason"] = (f"an fp32 step takes {rec['fp32_step_s']} s (< "
                                 f"{rec['min_step_s']} s): too short to gain or to time")
            elif "reason" not in rec:
                rec["reason"] = (f"bf16 step {rec['speedup']}x as fast as fp32 "
                                 f"({'>=' if rec['choice'] == 'bf16' else '<'} "
                                 f"{rec['min_speedup']}x)")
            rec.update(cpu=cpu_info()["model"],
                       bf16_isa=[ISA_FLAGS[f] for f in BF16_FLAGS if f in cpu_info()["flags"]],
                       machine=machine_line(machine_info()))
        if self.state.precision is None:
            self.state.precision = rec
            self.print(_precision_message(rec))
        if rec["choice"] != acc.mixed_precision:
            self.accelerator = make_accelerator(rec["choice"])

    # ----------------------------------------------------------------- step helpers
    def batch(self, indices: list[int], enc: Encoded | None = None) -> dict:
        """Collate ``indices`` of ``enc`` (default: the training data) with the objective's
        collate, on the accelerator's device."""
        enc = self.train_data if enc is None else enc
        if enc is self.train_data:
            self._n_ex = getattr(self, "_n_ex", 0) + len(indices)
        return {k: v.to(self.accelerator.device) for k, v in self.collate_fn(enc, indices).items()}

    def _stream_batches(self, name: str, epoch: int) -> list[list[int]]:
        """A stream's batches of one epoch (computed once per epoch, not once per step)."""
        cached = getattr(self, "_stream_cache", {}).get(name)
        if cached is not None and cached[0] == epoch:
            return cached[1]
        import zlib

        enc = self.streams[name]
        seed = self.cfg.seed + zlib.crc32(name.encode())  # each stream its own order
        batches = shard_batches(
            length_bucketed_batches(enc.lengths, self.cfg.batch_size, seed, epoch,
                                    self.cfg.pool_factor),
            self.accelerator.process_index, self.accelerator.num_processes)
        self._stream_cache = {**getattr(self, "_stream_cache", {}), name: (epoch, batches)}
        return batches

    def next_batch(self, stream: str) -> dict:
        """The next batch of an extra data stream (``objective.streams()``), cycling through
        its epochs; the position is part of the checkpoint."""
        if stream not in self.streams:
            raise ConfigError(f"no data stream '{stream}'; the objective declares "
                              f"{sorted(self.streams) or 'none'}")
        epoch, pos = self.state.streams.get(stream, [0, 0])
        batches = self._stream_batches(stream, epoch)
        if pos >= len(batches):
            epoch, pos = epoch + 1, 0
            batches = self._stream_batches(stream, epoch)
        self.state.streams[stream] = [epoch, pos + 1]
        return self.batch(batches[pos], self.streams[stream])

    def backward(self, loss: torch.Tensor, scale: float = 1.0) -> None:
        """NaN guard + ``accelerator.backward(loss * scale)``."""
        if not torch.isfinite(loss):
            last = self.last_checkpoint or "none yet"
            raise TrainingDiverged(
                f"loss is {loss.item()} at step {self.state.step + 1}; stopped. "
                f"Last good checkpoint: {last}")
        self.accelerator.backward(loss * scale if scale != 1.0 else loss)

    def step_optimizer(self, name: str | None = None) -> float | None:
        """Clip the gradients of that optimizer's parameters (``max_grad_norm``), step it and
        its scheduler, zero its gradients; returns the gradient norm before clipping."""
        name = name or next(iter(self.optimizers))
        opt, sched = self.optimizers[name], self.schedulers.get(name)
        norm = None
        if self.cfg.max_grad_norm:
            params = [p for g in opt.param_groups for p in g["params"]]
            norm = float(self.accelerator.clip_grad_norm_(params, self.cfg.max_grad_norm))
        opt.step()
        if sched is not None:
            sched.step()
        opt.zero_grad(set_to_none=True)
        return norm

    def _train_step(self, group: list[list[int]]) -> dict:
        """The default step: forward/backward over the group's micro-batches (gradient
        accumulation), then one step of every optimizer."""
        acc = self.accelerator
        n_micro = len(group)
        sums: dict[str, float] = {}
        for k, idx in enumerate(group):
            batch = self.batch(idx)
            sync = contextlib.nullcontext() if k == n_micro - 1 else acc.no_sync(self.model)
            with sync:
                out = self.model(batch)
                self.backward(out["loss"], 1.0 / n_micro)
            for key, v in out.items():
                sums[key] = sums.get(key, 0.0) + float(v.detach()) / n_micro
        # several optimizers and no training_step of its own: step them all
        norm = [self.step_optimizer(n) for n in self.optimizers][0]
        if norm is not None:
            sums["grad_norm"] = norm
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
        from accelerate.utils import gather_object

        acc = self.accelerator
        acc.wait_for_everyone()
        # every rank's own RNG states (its CUDA device's dropout stream): rank 0 writes them
        rank_rng = gather_object([ckpt.rng_state()]) if acc.num_processes > 1 else None
        if self.is_main:
            state = {"trainer": asdict(self.state),
                     "callbacks": [cb.state_dict() for cb in self.callbacks]}
            self.last_checkpoint = ckpt.save_checkpoint(
                self.ckpt_dir, self.state.step, self.unwrapped, self.optimizers,
                self.schedulers, state, keep=self.cfg.keep_checkpoints, rank_rng=rank_rng)
        acc.wait_for_everyone()


def _diff(old, new, prefix="") -> list[str]:
    out = []
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            out += _diff(old.get(k), new.get(k), f"{prefix}{k}.")
    elif old != new:
        out.append(f"{prefix.rstrip('.')}: {json.dumps(old)} -> {json.dumps(new)}")
    return out
