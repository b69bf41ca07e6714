"""Teacher signals: what a student learns from, wherever it comes from.

A teacher signal is bound to one encoded dataset (``Encoded``) and maps a collated batch
(which carries ``index``: positions in that dataset) to a :class:`TeacherOut`.

- :class:`OnlineTeacher`   an HF model in eval mode under ``torch.inference_mode``; returns the
  logits and, if asked, the hidden states / attentions / attention values of chosen layers.
- :class:`CachedTeacher`   the same outputs computed once per example and stored on disk
  (safetensors shards, flattened per token), keyed by the teacher (weights, config, features)
  and each example's token ids, so later epochs and runs skip the teacher entirely and added
  rows cost only their own forward pass.
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
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .data.collate import Encoded
from .errors import ConfigError, ModelError
from .names import MODEL_INPUTS, STRATEGIES  # noqa: F401 - re-exported

FEATURES = ("hidden", "attention", "value")


@dataclass
class TeacherOut:
    logits: torch.Tensor | None = None            # [B, C]; [K, B, C] for several teachers
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)     # layer -> [B, L, D]
    attention: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [B, H, L, L]
    value: dict[int, torch.Tensor] = field(default_factory=dict)      # layer -> [B, L, D]
    weights: torch.Tensor | None = None           # [B, K] ([B, L, K] per token) weights
    topk_values: torch.Tensor | None = None       # [B, L, k] cached top-k token logits
    topk_indices: torch.Tensor | None = None      # [B, L, k] their vocabulary ids


@dataclass(frozen=True)
class Needs:
    """Which intermediate features of which layers a distillation needs."""

    hidden: tuple[int, ...] = ()
    attention: tuple[int, ...] = ()
    value: tuple[int, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.hidden or self.attention or self.value)




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
    #: where the teacher's forward passes ran: "cuda:0", "cpu", "cache" (every row was cached
    #: before this run), "callable" (the user's function), "file" (a logits file)
    ran_on: str = "n/a"

    def devices(self) -> list[str]:
        """Where each teacher ran (a run records this: an online teacher left on the CPU
        while the student trains on a GPU is otherwise invisible)."""
        return [self.ran_on]

    def __call__(self, batch: dict) -> TeacherOut:  # pragma: no cover - interface
        raise NotImplementedError

    def logits_table(self) -> torch.Tensor | None:
        """The logits of every row it serves, in row order, when it already holds them (a
        cache, a logits file); None when getting them would cost a teacher pass."""
        return None


class OnlineTeacher(TeacherSignal):
    def __init__(self, model: torch.nn.Module, needs: Needs = Needs()):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.needs = needs
        self.recorder = prepare_for_features(self.model, needs)

    @property
    def ran_on(self) -> str:
        return str(next(self.model.parameters()).device)

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


def default_cache_dir() -> Path:
    from .cache import cache_root

    return cache_root() / "teacher"


def example_key(enc: Encoded, i: int) -> str:
    """The cache key of one example: its token ids (and token types), nothing else, so the
    same text tokenized the same way hits the cache in any dataset, order or run."""
    h = hashlib.sha256(np.asarray(enc.input_ids[i], dtype=np.int32).tobytes())
    if enc.token_type_ids:
        h.update(b"|")
        h.update(np.asarray(enc.token_type_ids[i], dtype=np.int8).tobytes())
    return h.hexdigest()[:32]


def topk_probs(values: torch.Tensor, indices: torch.Tensor, vocab: int,
               temperature: float = 1.0) -> torch.Tensor:
    """Dense distributions [..., V] from cached top-k logits (``values``/``indices`` [..., k]):
    softmax over the k kept logits at temperature τ, 0 elsewhere (the tail's mass is dropped
    and the kept part renormalised)."""
    p = (values.float() / temperature).softmax(-1)
    out = torch.zeros(values.shape[:-1] + (vocab,), device=values.device)
    return out.scatter_(-1, indices.long(), p)


def cache_bytes(enc: Encoded, needs: Needs, hidden: int, heads: int,
                dtype: torch.dtype = torch.float32) -> int:
    """Memory the cached intermediate features of ``enc`` take while they are built (hidden
    states and value vectors: Σ L·D per layer; attention: Σ H·L² per layer)."""
    size = torch.empty((), dtype=dtype).element_size()
    lens = np.asarray(enc.lengths, dtype=np.int64)
    tokens = int(lens.sum()) * hidden * (len(needs.hidden) + len(needs.value))
    att = int((lens ** 2).sum()) * heads * len(needs.attention)
    return (tokens + att) * size


def available_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable``), None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class CachedTeacher(TeacherSignal):
    """Teacher outputs for every example of ``enc``, kept on disk and computed only for the
    examples the cache does not hold yet.

    The cache of one teacher (its weights and config, the features asked for, the storage
    dtype) is a folder ``cache_dir/<teacher key>/`` of append-only *shards*. A shard holds some
    examples' outputs, each keyed by :func:`example_key` (its token ids): so adding rows to a
    dataset (augmented text, an L2A round, a new domain) runs the teacher on the new rows only,
    and a second run or epoch runs it on none. A shard is ``shard-<id>.safetensors`` (logits
    [m, C]; per feature and layer a flat tensor of the m examples' token rows, ``hidden_3`` is
    [Σ L_i, D], ``attention_2`` [Σ H·L_i²]) plus ``shard-<id>.json`` (keys, lengths, offsets),
    written last: a crash never leaves a half shard that is read.

    Token-level logits ([B, L, V], e.g. a masked-LM teacher) are stored per real token; with
    ``topk`` only the k largest logits of each token (values and vocabulary indices), returned
    as ``TeacherOut.topk_values`` / ``topk_indices`` [B, L, k] (see :func:`topk_probs`).
    ``hit`` is True when nothing had to be computed; ``computed`` counts the examples that were.
    """

    def __init__(self, model: torch.nn.Module, enc: Encoded, needs: Needs = Needs(),
                 cache_dir: str | Path | None = None, batch_size: int = 128,
                 dtype: torch.dtype = torch.float32, progress: bool = True,
                 teacher_key: str | None = None, device: torch.device | str | None = None,
                 topk: int | None = None):
        self.enc, self.needs, self.dtype, self.topk = enc, needs, dtype, topk
        key_src = json.dumps({"teacher": teacher_key or fingerprint_model(model),
                              "needs": needs.__dict__, "dtype": str(dtype), "topk": topk,
                              "v": 2}, sort_keys=True)
        self.key = hashlib.sha256(key_src.encode()).hexdigest()[:24]
        self.path = Path(cache_dir or default_cache_dir()) / self.key
        self.keys = [example_key(enc, i) for i in range(len(enc))]
        index = self._index()
        first: dict[str, int] = {}
        for i, k in enumerate(self.keys):
            if k not in index:
                first.setdefault(k, i)
        self.computed = len(first)
        self.hit = not first
        self.ran_on = "cache"
        if first:
            rows = sorted(first.values())
            self._build(model, enc.subset(rows), [self.keys[i] for i in rows], batch_size,
                        progress, device)
            index = self._index()
        self._assemble(index)

    # ---------------------------------------------------------------- disk
    def _index(self) -> dict[str, tuple[str, int]]:
        """example key -> (shard id, row) over every complete shard of this teacher."""
        out: dict[str, tuple[str, int]] = {}
        if not self.path.exists():
            return out
        for j in sorted(self.path.glob("shard-*.json")):
            try:
                meta = json.loads(j.read_text())
            except json.JSONDecodeError as e:
                raise ConfigError(f"teacher cache shard {j} is corrupt ({e}); delete "
                                  f"{self.path} to rebuild the cache") from e
            sid = j.stem
            for r, k in enumerate(meta["keys"]):
                out.setdefault(k, (sid, r))
        return out

    def _build(self, model, sub: Encoded, keys: list[str], batch_size, progress, device=None):
        """One pass of the teacher over the missing examples ``sub``, on ``device`` (the GPU
        when there is one); the outputs are gathered on the CPU and written as a new shard."""
        from safetensors.torch import save_file

        home = next(model.parameters()).device
        if device is not None:
            model.to(device)
        self.ran_on = str(next(model.parameters()).device)
        online = OnlineTeacher(model, self.needs)
        from .train.predict import iter_batches

        n, lengths = len(sub), sub.lengths
        logits = None
        per_ex: dict[str, list] = {}
        for b, batch in iter_batches(sub, batch_size, progress=progress,
                                     desc=f"caching teacher ({n} new)"):
            out = to_device(online(batch), torch.device("cpu"))
            lg = out.logits.float()
            if lg.ndim == 3:  # token-level: one row per real token
                for r, i in enumerate(b):
                    x = lg[r, :lengths[i]]
                    if self.topk:
                        v, ix = x.topk(min(self.topk, x.shape[-1]), dim=-1)
                        per_ex.setdefault("topk_values", [None] * n)[i] = v.to(self.dtype)
                        per_ex.setdefault("topk_indices", [None] * n)[i] = ix.to(torch.int32)
                    else:
                        per_ex.setdefault("tokens", [None] * n)[i] = x.to(self.dtype)
            else:
                if logits is None:
                    logits = torch.empty((n,) + tuple(lg.shape[1:]), dtype=torch.float32)
                logits[b] = lg
            for kind in FEATURES:
                for layer, t in getattr(out, kind).items():
                    lst = per_ex.setdefault(f"{kind}_{layer}", [None] * n)
                    for r, i in enumerate(b):
                        L = lengths[i]
                        x = t[r, :, :L, :L] if kind == "attention" else t[r, :L]
                        lst[i] = x.to(self.dtype).reshape(-1) if kind == "attention" else \
                            x.to(self.dtype)
        model.to(home)
        tensors = {} if logits is None else {"logits": logits.contiguous()}
        meta = {"keys": keys, "lengths": lengths,
                "features": {}}
        for name, lst in per_ex.items():
            tensors[name] = torch.cat(lst).contiguous()
            meta["features"][name] = np.cumsum([0] + [x.shape[0] for x in lst]).tolist()
        self.path.mkdir(parents=True, exist_ok=True)
        sid = "shard-" + hashlib.sha256("".join(meta["keys"]).encode()).hexdigest()[:16]
        tmp = f".tmp{os.getpid()}"
        save_file(tensors, str(self.path / f"{sid}.safetensors{tmp}"))
        os.replace(self.path / f"{sid}.safetensors{tmp}", self.path / f"{sid}.safetensors")
        (self.path / f"{sid}.json{tmp}").write_text(json.dumps(meta))
        os.replace(self.path / f"{sid}.json{tmp}", self.path / f"{sid}.json")  # last: complete

    def _assemble(self, index: dict[str, tuple[str, int]]):
        """This dataset's rows, gathered from the shards into one flat table per output."""
        from safetensors.torch import load_file

        shards: dict[str, tuple[dict, dict]] = {}
        for sid in sorted({index[k][0] for k in self.keys}):
            f = self.path / f"{sid}.safetensors"
            try:
                shards[sid] = (load_file(str(f)), json.loads((self.path / f"{sid}.json")
                                                              .read_text()))
            except Exception as e:  # noqa: BLE001
                raise ConfigError(f"teacher cache shard {f} is unreadable "
                                  f"({str(e).splitlines()[0][:120]}); delete {self.path} to "
                                  "rebuild the cache") from e
        logit_rows, feats = [], {}
        self.lengths = []
        for k in self.keys:
            sid, r = index[k]
            t, meta = shards[sid]
            if "logits" in t:
                logit_rows.append(t["logits"][r])
            self.lengths.append(meta["lengths"][r])
            for name, off in meta["features"].items():
                feats.setdefault(name, []).append(t[name][off[r]:off[r + 1]])
        if len(self.lengths) != len(self.enc) or self.lengths != self.enc.lengths:
            raise ConfigError(f"teacher cache {self.path} does not match the data")
        self.tensors = {}
        if logit_rows:
            self.tensors["logits"] = torch.stack(logit_rows)
        self.offsets = {}
        for name, rows in feats.items():
            self.tensors[name] = torch.cat(rows)
            self.offsets[name] = np.cumsum([0] + [x.shape[0] for x in rows])

    def logits_table(self) -> torch.Tensor | None:
        return self.tensors.get("logits")

    def __call__(self, batch: dict) -> TeacherOut:
        """The cached outputs of the batch's rows, on the batch's device."""
        idx = batch["index"].tolist()
        out = TeacherOut(logits=self.tensors["logits"][idx] if "logits" in self.tensors
                         else None)
        L = batch["input_ids"].shape[1]
        for name, off in self.offsets.items():
            kind, _, layer = name.rpartition("_")
            flat = self.tensors[name]
            rows = []
            for i in idx:
                x = flat[off[i]:off[i + 1]]
                li = self.lengths[i]
                if kind == "attention":
                    h = x.numel() // (li * li)
                    x = x.view(h, li, li)
                    x = torch.nn.functional.pad(x, (0, L - li, 0, L - li))
                elif name == "topk_values":  # padded tokens: -inf, so no probability there
                    x = torch.nn.functional.pad(x.float(), (0, 0, 0, L - li),
                                                value=float("-inf"))
                else:
                    x = torch.nn.functional.pad(x, (0, 0, 0, L - li))
                rows.append(x if name == "topk_indices" else x.float())
            stacked = torch.stack(rows)
            if name in ("topk_values", "topk_indices"):
                setattr(out, name, stacked)
            elif name == "tokens":
                out.logits = stacked
            else:
                getattr(out, kind)[int(layer)] = stacked
        return to_device(out, batch["input_ids"].device)


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


# ------------------------------------------------------------------ several teachers


def check_strategy(strategy: str, num_teachers: int, regression: bool = False,
                   fixed: Sequence[float] | None = None) -> None:
    """Refuse, with a one-line reason, a weighting that cannot apply (rather than silently
    becoming another): unknown names, ``confidence``/``entropy`` for regression (a scalar
    prediction has no confidence), ``fixed`` without K non-negative weights with a positive sum."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown teacher weighting '{strategy}'; choose from "
                          f"{', '.join(STRATEGIES)}")
    if regression and strategy in ("confidence", "entropy"):
        raise ConfigError(f"teacher weighting '{strategy}' needs class probabilities; a "
                          "regression task has none: use uniform, gold or fixed")
    if strategy == "fixed":
        if fixed is None or len(fixed) != num_teachers:
            raise ConfigError(f"strategy 'fixed' needs {num_teachers} weights, got {fixed}")
        if any(not math.isfinite(x) or x < 0 for x in fixed) or not sum(fixed) > 0:
            raise ConfigError(f"strategy 'fixed' needs finite weights >= 0 with a positive "
                              f"sum, got {list(fixed)}")


def teacher_weights(logits: torch.Tensor, strategy: str, labels: torch.Tensor | None = None,
                    fixed: Sequence[float] | None = None, regression: bool = False,
                    sharpness: float = 1.0) -> torch.Tensor:
    """Weights [*, K] of K teachers' predictions ``logits`` [K, *, C], one weight vector per
    prediction, each summing to 1 ("prediction weighting"). ``*`` is the batch ([B]: one per
    example) or batch × tokens ([B, L]: one per token, for masked-LM KD); ``labels`` has shape
    ``*`` (−100 = no gold label: augmented text, unmasked tokens).

    - ``uniform``:    1/K.
    - ``confidence``: ∝ max_c p_k(c)  (p at temperature 1).
    - ``entropy``:    ∝ exp(−H(p_k))  (sharper teachers count more).
    - ``gold``:       ∝ p_k(gold label); predictions without a gold label (label −100, or a
                      batch with no labels at all) fall back to ``confidence``. Regression:
                      ∝ exp(−(ŷ_k − y)²), rows without a target (NaN) uniform.
    - ``fixed``:      the given weights, normalised, the same for every prediction.
    ``sharpness`` raises the unnormalised scores to that power before normalising. Weights are
    on the device of ``logits``.
    """
    check_strategy(strategy, logits.shape[0], regression, fixed)
    K, lead = logits.shape[0], tuple(logits.shape[1:-1])
    flat = logits.reshape(K, -1, logits.shape[-1])  # [K, N, C]
    N, dev = flat.shape[1], logits.device
    if labels is not None:
        labels = labels.to(dev).reshape(-1)
        if labels.shape[0] != N:
            raise ConfigError(f"labels of shape {tuple(labels.shape)} do not match the "
                              f"teachers' predictions {tuple(logits.shape)}")
    if strategy == "uniform":
        return torch.full(lead + (K,), 1.0 / K, device=dev)
    if strategy == "fixed":
        w = torch.tensor(fixed, dtype=torch.float32, device=dev)
        return (w / w.sum()).expand(*lead, K).clone()
    # every score is kept as its logarithm and normalised by a softmax: score**sharpness
    # underflows float32 (0/0) where all teachers give the gold token a tiny probability
    if regression:
        pred = flat[..., 0].T  # [N, K]
        if labels is None:
            return torch.full(lead + (K,), 1.0 / K, device=dev)
        y = labels.float()[:, None]
        ok = torch.isfinite(y)
        log_score = torch.where(ok, -(pred - torch.where(ok, y, 0.0)) ** 2,
                                torch.zeros_like(pred))
    else:
        logp = flat.float().log_softmax(-1)  # [K, N, C]
        log_conf = logp.max(-1).values.T     # [N, K]
        if strategy == "confidence":
            log_score = log_conf
        elif strategy == "entropy":
            # log exp(−H) = Σ p log p; classes at −inf (outside a cached top-k) add 0
            plogp = logp.exp() * logp
            log_score = torch.where(torch.isfinite(logp), plogp, 0.0).sum(-1).T
        else:  # gold
            if labels is None:
                log_score = log_conf
            else:
                has = labels >= 0
                gold = logp.gather(-1, labels.clamp(min=0)[None, :, None].expand(K, N, 1))
                log_score = torch.where(has[:, None], gold[..., 0].T, log_conf)
    w = (log_score * sharpness).softmax(-1)
    return w.reshape(lead + (K,))


def mix(logits: torch.Tensor, weights: torch.Tensor, temperature: float = 1.0,
        regression: bool = False) -> torch.Tensor:
    """The weighted mixture Σ_k w_k softmax(t_k / τ): ``logits`` [K, *, C] and ``weights``
    [*, K] → probabilities [*, C] (``*`` = [B] or [B, L]); for regression the weighted mean
    prediction [B, 1]."""
    w = weights.movedim(-1, 0)[..., None]  # [K, *, 1]
    if regression:
        return (w * logits).sum(0)
    return (w * (logits / temperature).softmax(-1)).sum(0)


class MultiTeacher(TeacherSignal):
    def __init__(self, teachers: list[TeacherSignal], strategy: str = "uniform",
                 fixed: Sequence[float] | None = None, regression: bool = False,
                 sharpness: float = 1.0):
        check_strategy(strategy, len(teachers), regression, fixed)
        if any(t.needs.any for t in teachers):
            raise ConfigError("intermediate-layer KD from several teachers is not supported; "
                              "use logit KD with multiple teachers")
        self.teachers, self.strategy, self.fixed = teachers, strategy, fixed
        self.regression, self.sharpness = regression, sharpness
        self.num_teachers = len(teachers)

    def devices(self) -> list[str]:
        return [d for t in self.teachers for d in t.devices()]

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
    for name in ("weights", "topk_values", "topk_indices"):
        if getattr(t, name) is not None:
            setattr(t, name, getattr(t, name).to(dev))
    for kind in FEATURES:
        d = getattr(t, kind)
        for k in d:
            d[k] = d[k].to(dev)
    return t


# ------------------------------------------------------------------ calibration
def confidence_bins(logits: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> list[dict]:
    """Equal-width bins of the top probability: each non-empty bin's edges, mean confidence,
    accuracy and row count (the points of a reliability diagram; ECE is their weighted gap)."""
    p = logits.float().softmax(-1)
    conf, pred = p.max(-1)
    correct = (pred == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            out.append({"lo": round(float(lo), 3), "hi": round(float(hi), 3),
                        "confidence": float(conf[m].mean()), "accuracy": float(correct[m].mean()),
                        "rows": int(m.sum())})
    return out


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, bins: int = 15
                               ) -> float:
    """ECE: |accuracy − confidence| averaged over equal-width confidence bins, weighted by
    their share of the rows."""
    n = len(labels)
    return sum(b["rows"] / n * abs(b["accuracy"] - b["confidence"])
               for b in confidence_bins(logits, labels, bins))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, lo: float = 0.25,
                    hi: float = 20.0, iters: int = 60) -> float:
    """Temperature scaling (Guo et al. 2017): the τ in [lo, hi] minimising the NLL of
    softmax(logits / τ) on labelled rows. The NLL is convex in 1/τ, so a golden-section
    search over 1/τ finds it."""
    z = logits.float()
    y = labels.long()
    if z.ndim != 2 or y.shape != z.shape[:1] or len(y) == 0:
        raise ConfigError("fit_temperature needs logits [N, C] and N class labels")

    def nll(a: float) -> float:
        return float(torch.nn.functional.cross_entropy(z * a, y))

    a, b = 1.0 / hi, 1.0 / lo
    g = (5 ** 0.5 - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(d)
    return 1.0 / ((a + b) / 2)
