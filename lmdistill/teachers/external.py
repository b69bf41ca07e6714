"""Teachers from outside: a ``texts -> logits`` callable, a logits file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.collate import Encoded
from ..errors import ConfigError, ModelError
from .signals import TeacherOut, TeacherSignal


class CallableTeacher(TeacherSignal):
    """Any ``fn(texts) -> logits`` (numpy or torch, [B, C]); texts are strings or pairs.
    It may use any tokenizer: only logit KD is possible (intermediate KD needs a shared one).

    With ``cache_dir`` and an ``identity`` (the name the user gives the teacher), every
    text's logits are stored on disk keyed by the identity
    and the text, so the callable is called once per text across epochs *and runs*; texts seen
    before cost nothing. Without an identity the callable is called on every batch."""

    ran_on = "callable"  # the user's function: set it where the caller knows its device

    def __init__(self, fn: Callable[[list], object], enc: Encoded,
                 cache_dir: str | Path | None = None, identity: str | None = None,
                 batch_size: int = 128, progress: bool = False):
        self.fn, self.enc = fn, enc
        self.table: torch.Tensor | None = None
        self.calls = 0
        if cache_dir is not None and identity:
            self.table = self._cached(Path(cache_dir), identity, batch_size, progress)

    def _call(self, texts: list) -> torch.Tensor:
        self.calls += 1
        with torch.inference_mode():
            logits = torch.as_tensor(np.asarray(self.fn(texts)), dtype=torch.float32)
        if logits.ndim != 2 or logits.shape[0] != len(texts):
            raise ModelError(f"teacher callable returned shape {tuple(logits.shape)} for "
                             f"{len(texts)} texts; expected [{len(texts)}, num_labels]")
        return logits

    def _cached(self, root: Path, identity: str, batch_size: int, progress: bool):
        import hashlib

        d = root / "callable" / hashlib.sha256(identity.encode()).hexdigest()[:20]
        d.mkdir(parents=True, exist_ok=True)
        store = d / "logits.json"
        known: dict[str, list[float]] = json.loads(store.read_text()) if store.exists() else {}
        texts = [t[0] if t[1] is None else t for t in self.enc.texts]
        keys = [hashlib.sha256(json.dumps(t).encode()).hexdigest() for t in texts]
        first: dict[str, int] = {}  # one call per unseen text, even if it repeats
        for i, k in enumerate(keys):
            if k not in known:
                first.setdefault(k, i)
        todo = list(first.values())
        it = range(0, len(todo), batch_size)
        if progress and todo:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="teacher (callable)", unit="batch")
        for b in it:
            chunk = todo[b: b + batch_size]
            for i, row in zip(chunk, self._call([texts[i] for i in chunk]).tolist()):
                known[keys[i]] = row
        if todo:
            tmp = store.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(known))
            os.replace(tmp, store)
        self.hit = len(texts) - len(todo)
        return torch.tensor([known[k] for k in keys], dtype=torch.float32)

    def logits_table(self) -> torch.Tensor | None:
        return self.table

    def __call__(self, batch: dict) -> TeacherOut:
        idx = batch["index"]
        if self.table is not None:
            return TeacherOut(logits=self.table[idx.cpu()].to(batch["input_ids"].device))
        texts = [self.enc.texts[i] for i in idx.tolist()]
        texts = [t[0] if t[1] is None else t for t in texts]
        return TeacherOut(logits=self._call(texts).to(batch["input_ids"].device))


class LogitsFileTeacher(TeacherSignal):
    """Precomputed logits keyed by the example's row in its split (``Example.idx``)."""

    ran_on = "file"

    def __init__(self, path: str | Path, enc: Encoded):
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"teacher logits file {p} does not exist")
        if p.suffix == ".npy":
            table = {i: row for i, row in enumerate(np.load(p, allow_pickle=False))}
        else:
            table = {}
            for line in p.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    table[int(rec["idx"])] = np.asarray(rec["logits"], dtype=np.float32)
        missing = [i for i in enc.idx if i not in table]
        if missing:
            raise ConfigError(f"teacher logits file {p} has no row for {len(missing)} examples "
                              f"(first: row {missing[0]})")
        self.logits = torch.tensor(np.stack([table[i] for i in enc.idx]), dtype=torch.float32)

    def logits_table(self) -> torch.Tensor | None:
        return self.logits

    def __call__(self, batch: dict) -> TeacherOut:
        idx = batch["index"]  # the table lives on the CPU; the batch may be on a GPU
        return TeacherOut(logits=self.logits[idx.cpu()].to(idx.device))
