"""Teacher signals: what a student learns from, wherever it comes from.

A teacher signal is bound to one encoded dataset (``Encoded``) and maps a collated batch
(which carries ``index``: positions in that dataset) to a :class:`TeacherOut`.

- :class:`OnlineTeacher`   an HF model in eval mode under ``torch.inference_mode``; returns the
  logits and, if asked, the hidden states / attentions / attention values of chosen layers.
- :class:`CachedTeacher`   the same outputs computed once for the whole dataset and stored on
  disk (safetensors, flattened per token), keyed by teacher weights + token ids + features, so
  later epochs and later runs skip the teacher forward pass entirely.
- :class:`CallableTeacher` bring your own teacher: any ``fn(texts) -> logits`` with its own
  tokenizer (texts are ``str`` or ``(str, str)`` pairs). Logit KD only.
- :class:`LogitsFileTeacher` precomputed logits from a file (``.npy`` [N, C] aligned with the
  split's rows, or JSONL ``{"idx": i, "logits": [...]}``). Logit KD only.
- :class:`MultiTeacher`   several teachers; returns each one's logits plus per-example weights
  from a named strategy (see :func:`teacher_weights`); the objective mixes the distributions.

Layers use the ``hidden_states`` numbering (0 = embeddings, i = output of layer i);
attentions and values of layer i are those computed inside layer i.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .data.collate import Encoded, collate, sorted_batches
from .errors import ConfigError, ModelError

FEATURES = ("hidden", "attention", "value")


@dataclass
class TeacherOut:
    logits: torch.Tensor | None = None            # [B, C]; [K, B, C] for several teachers
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)     # layer -> [B, L, D]
    attention: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [B, H, L, L]
    value: dict[int, torch.Tensor] = field(default_factory=dict)      # layer -> [B, L, D]
    weights: torch.Tensor | None = None           # [B, K] multi-teacher weights


@dataclass(frozen=True)
class Needs:
    """Which intermediate features of which layers a distillation needs."""

    hidden: tuple[int, ...] = ()
    attention: tuple[int, ...] = ()
    value: tuple[int, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.hidden or self.attention or self.value)


MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class ValueRecorder:
    """Forward hooks on every ``attention.self.value`` projection: the i-th call in a forward
    pass is layer i's value (this also holds for shared layers applied several times)."""

    def __init__(self, model: torch.nn.Module):
        self.outputs: list[torch.Tensor] = []
        self.handles = []
        for name, mod in model.named_modules():
            if name.endswith("attention.self.value"):
                self.handles.append(mod.register_forward_hook(self._hook))
        if not self.handles:
            raise ModelError(f"{type(model).__name__} has no attention value projections to "
                             "distil from (value-relation KD needs a BERT-like model)")

    def _hook(self, _mod, _inp, out):
        self.outputs.append(out)

    def layer(self, i: int) -> torch.Tensor:
        return self.outputs[i - 1]


def run_model(model: torch.nn.Module, batch: dict, needs: Needs,
              recorder: ValueRecorder | None = None):
    """Forward ``model`` once, returning (output, TeacherOut-style features dict)."""
    if recorder is not None:
        recorder.outputs.clear()
    inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
    out = model(**inputs, output_hidden_states=bool(needs.hidden),
                output_attentions=bool(needs.attention))
    feats = TeacherOut(logits=out.logits)
    if needs.hidden:
        feats.hidden = {i: out.hidden_states[i] for i in needs.hidden}
    if needs.attention:
        feats.attention = {i: out.attentions[i - 1] for i in needs.attention}
    if needs.value:
        feats.value = {i: recorder.layer(i) for i in needs.value}
    return out, feats


def prepare_for_features(model: torch.nn.Module, needs: Needs) -> ValueRecorder | None:
    """Switch to eager attention if attention maps are needed; hook values if needed."""
    if needs.attention and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    return ValueRecorder(model) if needs.value else None


class TeacherSignal:
    needs: Needs = Needs()
    num_teachers: int = 1

    def __call__(self, batch: dict) -> TeacherOut:  # pragma: no cover - interface
        raise NotImplementedError


class OnlineTeacher(TeacherSignal):
    def __init__(self, model: torch.nn.Module, needs: Needs = Needs()):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.needs = needs
        self.recorder = prepare_for_features(self.model, needs)

    @torch.inference_mode()
    def __call__(self, batch: dict) -> TeacherOut:
        dev = next(self.model.parameters()).device
        b = {k: v.to(dev) for k, v in batch.items() if k in MODEL_INPUTS}
        return run_model(self.model, b, self.needs, self.recorder)[1]


def fingerprint_model(model: torch.nn.Module) -> str:
    """sha256 over the config and the names and bytes of every tensor: same network, same key
    (the config matters too: e.g. a different head count gives other attentions)."""
    h = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        h.update(config.to_json_string(use_diff=False).encode())
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(str(v.dtype).encode())
        # raw bytes through uint8: numpy has no bfloat16, so .numpy() would fail on a bf16 model
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def fingerprint_data(enc: Encoded) -> str:
    h = hashlib.sha256()
    for ids in enc.input_ids:
        h.update(np.asarray(ids, dtype=np.int32).tobytes())
        h.update(b"|")
    if enc.token_type_ids:
        for tt in enc.token_type_ids:
            h.update(np.asarray(tt, dtype=np.int8).tobytes())
    return h.hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("LMDISTILL_CACHE", Path.home() / ".cache" / "lmdistill")) / "teacher"


class CachedTeacher(TeacherSignal):
    """Teacher outputs for every example of ``enc``, computed once and kept on disk.

    Layout of a cache entry (a folder named by the key): ``logits.safetensors`` [N, C];
    per feature and layer a flat tensor of all examples' token rows (``hidden_3`` is
    [Σ L_i, D], ``attention_2`` is [Σ H·L_i², ] flattened) with ``offsets`` in ``meta.json``.
    Entries are written to a temporary folder and renamed, so a crash never leaves half a cache.
    The in-memory copy is loaded once (memory-mapped by safetensors).
    """

    def __init__(self, model: torch.nn.Module, enc: Encoded, needs: Needs = Needs(),
                 cache_dir: str | Path | None = None, batch_size: int = 128,
                 dtype: torch.dtype = torch.float32, progress: bool = True,
                 teacher_key: str | None = None, device: torch.device | str | None = None):
        self.enc, self.needs = enc, needs
        key_src = json.dumps({"teacher": teacher_key or fingerprint_model(model),
                              "data": fingerprint_data(enc), "needs": needs.__dict__,
                              "dtype": str(dtype), "v": 1}, sort_keys=True)
        self.key = hashlib.sha256(key_src.encode()).hexdigest()[:24]
        self.path = Path(cache_dir or default_cache_dir()) / self.key
        self.hit = (self.path / "meta.json").exists()
        if not self.hit:
            self._build(model, batch_size, dtype, progress, device)
        self._load()

    def _build(self, model, batch_size, dtype, progress, device=None):
        """One pass of the teacher over the data, on ``device`` (the GPU when there is one);
        the outputs are kept on the CPU, where the cache file is written from."""
        from safetensors.torch import save_file

        home = next(model.parameters()).device
        if device is not None:
            model.to(device)
        online = OnlineTeacher(model, self.needs)
        n = len(self.enc)
        lengths = self.enc.lengths
        logits = None
        batches = sorted_batches(lengths, batch_size)
        it = batches
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(batches, desc="caching teacher", leave=False, dynamic_ncols=True)
        per_ex: dict[str, list] = {}
        for b in it:
            out = to_device(online(collate(self.enc, b, with_labels=False)), torch.device("cpu"))
            if logits is None:
                logits = torch.empty((n,) + tuple(out.logits.shape[1:]), dtype=torch.float32)
            logits[b] = out.logits.float()
            for kind in FEATURES:
                for layer, t in getattr(out, kind).items():
                    lst = per_ex.setdefault(f"{kind}_{layer}", [None] * n)
                    for r, i in enumerate(b):
                        L = lengths[i]
                        x = t[r, :, :L, :L] if kind == "attention" else t[r, :L]
                        lst[i] = x.to(dtype).reshape(-1) if kind == "attention" else x.to(dtype)
        model.to(home)
        tensors = {"logits": logits.contiguous()}
        meta = {"n": n, "lengths": lengths, "features": {}}
        for name, lst in per_ex.items():
            tensors[name] = torch.cat(lst).contiguous()
            meta["features"][name] = np.cumsum([0] + [x.shape[0] for x in lst]).tolist()
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp / "tensors.safetensors"))
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, self.path)
        except OSError:  # another process won the race: use its entry
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    def _load(self):
        from safetensors.torch import load_file

        meta = json.loads((self.path / "meta.json").read_text())
        if meta["n"] != len(self.enc):
            raise ConfigError(f"teacher cache {self.path} does not match the data")
        self.tensors = load_file(str(self.path / "tensors.safetensors"))
        self.offsets = {k: np.asarray(v) for k, v in meta["features"].items()}
        self.lengths = meta["lengths"]

    def __call__(self, batch: dict) -> TeacherOut:
        """The cached outputs of the batch's rows, on the batch's device."""
        idx = batch["index"].tolist()
        out = TeacherOut(logits=self.tensors["logits"][idx])
        L = batch["input_ids"].shape[1]
        for name, off in self.offsets.items():
            kind, layer = name.rsplit("_", 1)
            flat = self.tensors[name]
            rows = []
            for i in idx:
                x = flat[off[i]:off[i + 1]]
                li = self.lengths[i]
                if kind == "attention":
                    h = x.numel() // (li * li)
                    x = x.view(h, li, li)
                    x = torch.nn.functional.pad(x, (0, L - li, 0, L - li))
                else:
                    x = torch.nn.functional.pad(x, (0, 0, 0, L - li))
                rows.append(x.float())
            getattr(out, kind)[int(layer)] = torch.stack(rows)
        return to_device(out, batch["input_ids"].device)


class CallableTeacher(TeacherSignal):
    """Any ``fn(texts) -> logits`` (numpy or torch, [B, C]); texts are strings or pairs.
    It may use any tokenizer: only logit KD is possible (intermediate KD needs a shared one)."""

    def __init__(self, fn: Callable[[list], object], enc: Encoded):
        self.fn, self.enc = fn, enc

    def __call__(self, batch: dict) -> TeacherOut:
        texts = [self.enc.texts[i] for i in batch["index"].tolist()]
        texts = [t[0] if t[1] is None else t for t in texts]
        with torch.inference_mode():
            logits = torch.as_tensor(np.asarray(self.fn(texts)), dtype=torch.float32)
        if logits.ndim != 2 or logits.shape[0] != len(texts):
            raise ModelError(f"teacher callable returned shape {tuple(logits.shape)} for "
                             f"{len(texts)} texts; expected [{len(texts)}, num_labels]")
        return TeacherOut(logits=logits.to(batch["input_ids"].device))


class LogitsFileTeacher(TeacherSignal):
    """Precomputed logits keyed by the example's row in its split (``Example.idx``)."""

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

    def __call__(self, batch: dict) -> TeacherOut:
        idx = batch["index"]  # the table lives on the CPU; the batch may be on a GPU
        return TeacherOut(logits=self.logits[idx.cpu()].to(idx.device))


# ------------------------------------------------------------------ several teachers
STRATEGIES = ("uniform", "confidence", "entropy", "gold", "fixed")


def teacher_weights(logits: torch.Tensor, strategy: str, labels: torch.Tensor | None = None,
                    fixed: Sequence[float] | None = None, regression: bool = False,
                    sharpness: float = 1.0) -> torch.Tensor:
    """Per-example weights [B, K] of K teachers' predictions ``logits`` [K, B, C], each row
    summing to 1 ("prediction weighting").

    - ``uniform``:    1/K.
    - ``confidence``: ∝ max_c p_k(c)  (p at temperature 1).
    - ``entropy``:    ∝ exp(−H(p_k))  (sharper teachers count more).
    - ``gold``:       ∝ p_k(gold label); examples without a gold label (augmented text,
                      label −100) fall back to ``confidence``. Regression: ∝ exp(−(ŷ_k − y)²).
    - ``fixed``:      the given weights, normalised, the same for every example.
    ``sharpness`` raises the unnormalised scores to that power before normalising.
    """
    K, B = logits.shape[0], logits.shape[1]
    dev = logits.device
    if labels is not None:
        labels = labels.to(dev)
    if strategy == "uniform":
        return torch.full((B, K), 1.0 / K, device=dev)
    if strategy == "fixed":
        if fixed is None or len(fixed) != K:
            raise ConfigError(f"strategy 'fixed' needs {K} weights, got {fixed}")
        w = torch.tensor(fixed, dtype=torch.float32, device=dev).clamp(min=0)
        return (w / w.sum()).expand(B, K).clone()
    if regression:
        pred = logits[..., 0].T  # [B, K]
        if strategy != "gold" or labels is None:
            return torch.full((B, K), 1.0 / K, device=dev)
        y = labels.float()[:, None]
        ok = torch.isfinite(y)
        score = torch.exp(-(pred - torch.where(ok, y, 0.0)) ** 2)
        score = torch.where(ok, score, torch.ones_like(score))
    else:
        p = logits.float().softmax(-1)  # [K, B, C]
        if strategy == "confidence":
            score = p.max(-1).values.T
        elif strategy == "entropy":
            h = -(torch.xlogy(p, p)).sum(-1)
            score = torch.exp(-h).T
        elif strategy == "gold":
            if labels is None:
                raise ConfigError("strategy 'gold' needs gold labels")
            has = labels >= 0
            gold = p.gather(-1, labels.clamp(min=0)[None, :, None].expand(K, B, 1))[..., 0].T
            score = torch.where(has[:, None], gold, p.max(-1).values.T)
        else:
            raise ConfigError(f"unknown teacher weighting '{strategy}'; choose from "
                              f"{', '.join(STRATEGIES)}")
    score = score.clamp(min=1e-12) ** sharpness
    return score / score.sum(-1, keepdim=True)


def mix(logits: torch.Tensor, weights: torch.Tensor, temperature: float = 1.0,
        regression: bool = False) -> torch.Tensor:
    """The weighted mixture: Σ_k w_bk softmax(t_k / τ) → probabilities [B, C] (or, for
    regression, the weighted mean prediction [B, 1])."""
    w = weights.T[..., None]  # [K, B, 1]
    if regression:
        return (w * logits).sum(0)
    return (w * (logits / temperature).softmax(-1)).sum(0)


class MultiTeacher(TeacherSignal):
    def __init__(self, teachers: list[TeacherSignal], strategy: str = "uniform",
                 fixed: Sequence[float] | None = None, regression: bool = False,
                 sharpness: float = 1.0):
        if strategy not in STRATEGIES:
            raise ConfigError(f"unknown teacher weighting '{strategy}'; choose from "
                              f"{', '.join(STRATEGIES)}")
        if any(t.needs.any for t in teachers):
            raise ConfigError("intermediate-layer KD from several teachers is not supported; "
                              "use logit KD with multiple teachers")
        self.teachers, self.strategy, self.fixed = teachers, strategy, fixed
        self.regression, self.sharpness = regression, sharpness
        self.num_teachers = len(teachers)

    def __call__(self, batch: dict) -> TeacherOut:
        dev = batch["input_ids"].device  # cached/file/callable teachers answer from the CPU
        logits = torch.stack([t(batch).logits.float().to(dev) for t in self.teachers])
        w = teacher_weights(logits, self.strategy, batch.get("labels"), self.fixed,
                            self.regression, self.sharpness)
        return TeacherOut(logits=logits, weights=w)


def to_device(t: TeacherOut, dev: torch.device) -> TeacherOut:
    """Move every tensor of ``t`` to ``dev`` (in place; returns ``t``)."""
    if t.logits is not None:
        t.logits = t.logits.to(dev)
    if t.weights is not None:
        t.weights = t.weights.to(dev)
    for kind in FEATURES:
        d = getattr(t, kind)
        for k in d:
            d[k] = d[k].to(dev)
    return t
