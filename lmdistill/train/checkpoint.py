"""Atomic, verifiable training checkpoints.

A checkpoint is a folder ``checkpoints/step-00000123/`` holding

- ``model.safetensors``  every trainable tensor of the objective (student + projections ...),
- ``optimizer.pt`` / ``scheduler.pt``  ``{name: state dict}`` of every optimizer and scheduler
  of the run (tensors and numbers only; loaded with ``torch.load(weights_only=True)``, so no
  arbitrary pickles are executed),
- ``rng.safetensors``  the torch CPU RNG state and, on a GPU machine, every CUDA device's
  (dropout on the GPU draws from those), plus Python/NumPy RNG states in the JSON; with
  several processes every rank's own states (``rng-rank1.safetensors`` ..., their JSON parts
  under ``rng_ranks``), so each rank resumes its own dropout stream,
- ``trainer_state.json``  step, epoch, position in the epoch, callback states,
- ``MANIFEST.json``  sha256 of every file, written last.

It is written into ``step-N.tmp`` and renamed into place, so a kill leaves either a complete
checkpoint or a ``.tmp`` folder that is ignored. On load the manifest is verified; a corrupt or
incomplete checkpoint is reported and the previous good one is used instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from ..errors import CheckpointError

MANIFEST = "MANIFEST.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    except OSError:
        pass


def rng_state() -> tuple[dict, dict]:
    """(tensors, json-able) RNG state of torch, Python and NumPy."""
    np_state = np.random.get_state()
    js = {
        "python": _tuples_to_lists(random.getstate()),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = st
    return tensors, js


def set_rng_state(tensors: dict, js: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors, key=lambda k: int(k[5:]) if k[5:].isdigit()
                                       else -1) if k.startswith("cuda_")]
    if cuda and torch.cuda.is_available():
        n = torch.cuda.device_count()
        if len(cuda) == n:
            torch.cuda.set_rng_state_all(cuda)
        else:  # resumed on another number of GPUs: restore what matches
            for i, st in enumerate(cuda[:n]):
                torch.cuda.set_rng_state(st, i)
    random.setstate(_lists_to_tuples(js["python"]))
    n = js["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))


def _tuples_to_lists(x):
    return [_tuples_to_lists(i) for i in x] if isinstance(x, (tuple, list)) else x


def _lists_to_tuples(x):
    return tuple(_lists_to_tuples(i) for i in x) if isinstance(x, list) else x


def _as_dict(x) -> dict:
    return x if isinstance(x, dict) else {"main": x}


def save_checkpoint(ckpt_dir: Path, step: int, model: torch.nn.Module, optimizers, schedulers,
                    state: dict, keep: int = 2, rank_rng: list[tuple[dict, dict]] | None = None
                    ) -> Path:
    """``optimizers`` / ``schedulers``: ``{name: obj}`` (or one object; schedulers may be
    None). ``rank_rng``: every rank's :func:`rng_state` (gathered by the caller; index =
    rank); default: this process's only."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / f"step-{step:08d}"
    tmp = ckpt_dir / f"step-{step:08d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    torch.save({k: o.state_dict() for k, o in _as_dict(optimizers).items()}, tmp / "optimizer.pt")
    torch.save({k: s.state_dict() for k, s in _as_dict(schedulers).items() if s is not None},
               tmp / "scheduler.pt")
    ranks = rank_rng or [rng_state()]
    rt, rj = ranks[0]
    save_file(rt, str(tmp / "rng.safetensors"))
    for r, (t, _) in enumerate(ranks[1:], 1):
        save_file(t, str(tmp / f"rng-rank{r}.safetensors"))
    extra = {"rng_ranks": {str(r): j for r, (_, j) in enumerate(ranks[1:], 1)}} \
        if len(ranks) > 1 else {}
    (tmp / "trainer_state.json").write_text(json.dumps({**state, "rng": rj, **extra}))
    manifest = {p.name: _sha256(p) for p in sorted(tmp.iterdir())}
    with open(tmp / MANIFEST, "w") as f:
        json.dump(manifest, f)
        f.flush()
        os.fsync(f.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(ckpt_dir)
    for old in list_checkpoints(ckpt_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    if not ckpt_dir.exists():
        return []
    return sorted(p for p in ckpt_dir.iterdir() if p.is_dir() and p.name.startswith("step-")
                  and not p.name.endswith(".tmp"))


def verify(path: Path) -> str | None:
    """None if the checkpoint is complete and intact, else the reason it is not."""
    m = path / MANIFEST
    if not m.exists():
        return "no manifest (incomplete write)"
    try:
        manifest = json.loads(m.read_text())
    except json.JSONDecodeError:
        return "manifest unreadable"
    for name, digest in manifest.items():
        f = path / name
        if not f.exists():
            return f"{name} missing"
        if _sha256(f) != digest:
            return f"{name} corrupt (checksum mismatch)"
    return None


def latest_good(ckpt_dir: Path, warn=print) -> Path | None:
    """The newest checkpoint that verifies; corrupt ones are reported and skipped."""
    cands = list_checkpoints(ckpt_dir)
    for p in reversed(cands):
        why = verify(p)
        if why is None:
            return p
        warn(f"checkpoint {p.name} is unusable ({why}); falling back to the previous one")
    if cands:
        raise CheckpointError(f"no usable checkpoint in {ckpt_dir}: all {len(cands)} are corrupt")
    return None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizers, schedulers,
                    rank: int = 0) -> dict:
    """Weights, optimizers, schedulers and ``rank``'s RNG states (rank 0's where the
    checkpoint holds none for it: it was written by fewer processes); returns the trainer
    state."""
    try:
        missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"checkpoint {path} does not match the model (missing {list(missing)[:3]}, "
                f"unexpected {list(unexpected)[:3]})")
        opt_sd = torch.load(path / "optimizer.pt", weights_only=True)
        sch_sd = torch.load(path / "scheduler.pt", weights_only=True)
        opts = _as_dict(optimizers)
        if set(opt_sd) != set(opts):
            raise CheckpointError(f"checkpoint {path} has optimizers {sorted(opt_sd)}, the run "
                                  f"has {sorted(opts)}")
        for k, o in opts.items():
            o.load_state_dict(opt_sd[k])
        for k, sch in _as_dict(schedulers).items():
            if sch is not None:
                sch.load_state_dict(sch_sd[k])
        state = json.loads((path / "trainer_state.json").read_text())
        js, ranks = state.pop("rng"), state.pop("rng_ranks", {})
        own = path / f"rng-rank{rank}.safetensors"
        if rank > 0 and own.exists() and str(rank) in ranks:
            set_rng_state(load_file(str(own)), ranks[str(rank)])
        else:
            set_rng_state(load_file(str(path / "rng.safetensors")), js)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"cannot load checkpoint {path}: {str(e).splitlines()[0]}") from e
    return state
