"""Teacher outputs computed once per example and stored on disk (:class:`CachedTeacher`)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from ..data.collate import Encoded
from ..errors import ConfigError
from .signals import FEATURES, Needs, OnlineTeacher, TeacherOut, TeacherSignal, to_device


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
    from ..cache import cache_root

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
               temperature: float = 1.0, logz: torch.Tensor | None = None,
               target_logit: torch.Tensor | None = None,
               target_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Dense distributions [N, V] from cached top-k logits (``values``/``indices`` [N, k]).

    With ``logz`` (logsumexp of all V logits, [N]) the probabilities are not renormalised over
    the k kept tokens: at τ = 1 each kept token gets its exact probability exp(v − logz); with
    ``target_logit``/``target_ids`` ([N]: e.g. the gold token at a masked position) the target
    gets its exact probability too, wherever it ranks; the rest of the mass is spread evenly
    over the other tokens (each the logit c with (n_rest)·exp(c − logz) = that mass). At τ ≠ 1
    the same logits (kept, target, n_rest × c) are softmaxed at τ: exact for the kept and target
    tokens' relative odds, the tail approximated as flat. Without ``logz``: the older renormalised
    top-k (softmax over the k kept logits, 0 elsewhere)."""
    v = values.float()
    if logz is None:
        p = (v / temperature).softmax(-1)
        out = torch.zeros(v.shape[:-1] + (vocab,), device=v.device)
        return out.scatter_(-1, indices.long(), p)
    idx, logz = indices.long(), logz.float()
    k = v.shape[-1]
    kept_mass = torch.exp(v - logz[..., None]).sum(-1)
    cols = [v]
    has_t = None
    if target_logit is not None:
        tid = target_ids.long()
        has_t = ~(idx == tid[..., None]).any(-1)  # the target is outside the top-k
        t = target_logit.float()
        t_mass = torch.where(has_t, torch.exp(t - logz), torch.zeros_like(t))
        cols.append(torch.where(has_t, t, torch.full_like(t, float("-inf")))[..., None])
        kept_mass = kept_mass + t_mass
    n_rest = (vocab - k - (has_t.to(v.dtype) if has_t is not None
                           else torch.zeros_like(logz))).clamp_min(1)
    c = logz + torch.log((1.0 - kept_mass).clamp_min(1e-12) / n_rest)  # each tail token's logit
    # the tail as one column: n_rest tokens of logit c, i.e. c/τ + log n_rest after scaling
    z = torch.cat([*cols, (c + temperature * torch.log(n_rest))[..., None]], -1) / temperature
    p = z.softmax(-1)  # [N, k (+1 target) + 1 rest]
    out = (p[..., -1] / n_rest)[..., None].expand(*v.shape[:-1], vocab).clone()
    out.scatter_(-1, idx, p[..., :k])
    if has_t is not None:
        tid_safe = tid[..., None]
        cur = out.gather(-1, tid_safe)
        out.scatter_(-1, tid_safe, torch.where(has_t[..., None], p[..., k:k + 1], cur))
    return out


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
    ``topk`` only the k largest logits of each token (values and vocabulary indices), the
    logsumexp of all V logits and, given ``targets`` (per example, a token id per position: for
    a masked LM the original tokens), the logit of each position's target token: returned as
    ``TeacherOut.topk_values`` / ``topk_indices`` [B, L, k], ``topk_logz`` / ``topk_target``
    [B, L], so :func:`topk_probs` keeps every kept token's and the target's exact probability
    instead of renormalising over k.
    ``hit`` is True when nothing had to be computed; ``computed`` counts the examples that were.
    """

    def __init__(self, model: torch.nn.Module, enc: Encoded, needs: Needs = Needs(),
                 cache_dir: str | Path | None = None, batch_size: int = 128,
                 dtype: torch.dtype = torch.float32, progress: bool = True,
                 teacher_key: str | None = None, device: torch.device | str | None = None,
                 topk: int | None = None, targets: list[list[int]] | None = None):
        self.enc, self.needs, self.dtype, self.topk = enc, needs, dtype, topk
        self.targets = targets
        key_src = json.dumps({"teacher": teacher_key or fingerprint_model(model),
                              "needs": needs.__dict__, "dtype": str(dtype), "topk": topk,
                              "targets": targets is not None, "v": 3}, sort_keys=True)
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
                        progress, device, rows)
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

    def _build(self, model, sub: Encoded, keys: list[str], batch_size, progress, device=None,
               rows: list[int] | None = None):
        """One pass of the teacher over the missing examples ``sub``, on ``device`` (the GPU
        when there is one); the outputs are gathered on the CPU and written as a new shard."""
        from safetensors.torch import save_file

        home = next(model.parameters()).device
        if device is not None:
            model.to(device)
        self.ran_on = str(next(model.parameters()).device)
        online = OnlineTeacher(model, self.needs)
        from ..train.predict import iter_batches

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
                        per_ex.setdefault("topk_logz", [None] * n)[i] = \
                            x.logsumexp(-1).to(self.dtype)
                        if self.targets is not None:
                            tgt = torch.as_tensor(self.targets[rows[i]], dtype=torch.long)
                            per_ex.setdefault("topk_target", [None] * n)[i] = \
                                x.gather(-1, tgt[:lengths[i], None])[:, 0].to(self.dtype)
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
                elif x.ndim == 1:  # one value per token (topk_logz, topk_target)
                    x = torch.nn.functional.pad(x, (0, L - li))
                else:
                    x = torch.nn.functional.pad(x, (0, 0, 0, L - li))
                rows.append(x if name == "topk_indices" else x.float())
            stacked = torch.stack(rows)
            if name.startswith("topk_"):
                setattr(out, name, stacked)
            elif name == "tokens":
                out.logits = stacked
            else:
                getattr(out, kind)[int(layer)] = stacked
        return to_device(out, batch["input_ids"].device)
