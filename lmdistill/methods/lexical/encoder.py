"""The NN sense teacher's numerics: contextual vectors of target words (:class:`TokenEncoder`, on
a CUDA GPU when there is one), layer combination and the cosine / gloss / prior scoring."""

from __future__ import annotations

import numpy as np
import torch


# ------------------------------------------------------------------ encoder
def tokenize_words(tok, word_lists: list[list[str]], max_length: int):
    """Wordpieces of sentences given as words (``_`` in a word becomes a space; an empty word
    ``-``), truncated to ``max_length``; ``enc.word_ids(i)`` maps pieces back to words. The
    one tokenization of target words (the NN teacher's and the lexical-KD student's)."""
    words = [[w.replace("_", " ") or "-" for w in ws] for ws in word_lists]
    return tok(words, is_split_into_words=True, truncation=True, max_length=max_length)


class TokenEncoder:
    """Contextual vectors of target words: ``enc(items)`` with items ``(words, targets)``
    (each target a list of word positions) returns per item an array [T, H, d] (the mean of
    the targets' wordpieces at each of the H hidden states). Words containing ``_`` are
    split on it. A target cut off by ``max_length`` gets zeros (counted in ``truncated``)."""

    def __init__(self, ref: str, max_length: int = 512, batch_tokens: int = 8192):
        from transformers import AutoModel

        from ...models import hub

        self.ref, self.max_length, self.batch_tokens = ref, max_length, batch_tokens
        self.tok = hub.load_tokenizer(ref)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = AutoModel.from_pretrained(hub.resolve(ref)).eval().to(self.device)
        cfg = self.model.config
        self.n_states, self.dim = cfg.num_hidden_layers + 1, cfg.hidden_size
        self.truncated = 0

    @torch.inference_mode()
    def __call__(self, items: list[tuple[list[str], list[list[int]]]], progress: bool = False,
                 desc: str = "encode") -> list[np.ndarray]:
        enc = tokenize_words(self.tok, [ws for ws, _ in items], self.max_length)
        lens = [len(x) for x in enc["input_ids"]]
        order = sorted(range(len(items)), key=lambda i: lens[i])
        batches, cur = [], []
        for i in order:
            if cur and (len(cur) + 1) * lens[i] > self.batch_tokens:
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        out: list[np.ndarray | None] = [None] * len(items)
        it = batches
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(batches, desc=desc, unit="batch")
        for b in it:
            L = max(lens[i] for i in b)
            ids = torch.zeros(len(b), L, dtype=torch.long, device="cpu")  # filled, then moved
            mask = torch.zeros(len(b), L, dtype=torch.long, device="cpu")
            for r, i in enumerate(b):
                ids[r, :lens[i]] = torch.tensor(enc["input_ids"][i], device="cpu")
                mask[r, :lens[i]] = 1
            hs = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                            output_hidden_states=True).hidden_states
            h = torch.stack(hs, 1).float().cpu()  # [B, H, L, d]
            for r, i in enumerate(b):
                wid = enc.word_ids(i)
                pos_of: dict[int, list[int]] = {}
                for p, w in enumerate(wid):
                    if w is not None:
                        pos_of.setdefault(w, []).append(p)
                vs = np.zeros((len(items[i][1]), self.n_states, self.dim), np.float32)
                for t, target in enumerate(items[i][1]):
                    ps = [p for w in target for p in pos_of.get(w, [])]
                    if ps:
                        vs[t] = h[r][:, ps].mean(1).numpy()
                    else:
                        self.truncated += 1
                out[i] = vs
        return out  # type: ignore[return-value]


# ------------------------------------------------------------------ scoring (pure)
def combine_layers(x: np.ndarray, layers: tuple[int, ...], how: str = "sum") -> np.ndarray:
    """[..., H, d] → [..., D]: the sum of the chosen hidden states, or the concatenation of
    each L2-normalised."""
    sel = x[..., list(layers), :]
    if how == "sum":
        return sel.sum(-2)
    if how == "concat":
        n = np.linalg.norm(sel, axis=-1, keepdims=True)
        sel = sel / np.maximum(n, 1e-12)
        return sel.reshape(*sel.shape[:-2], -1)
    raise ValueError(f"layer combination '{how}': sum or concat")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def flat_scores(cos_ctx: np.ndarray, cos_gloss: np.ndarray, logprior: np.ndarray,
                beta: float = 0.0, w: float = 0.0) -> np.ndarray:
    """Per candidate row: ``cos_ctx + beta·cos_gloss + w·logprior``; NaN where the candidate
    has no coverage vector (``cos_ctx`` NaN); a NaN gloss cosine counts as 0."""
    g = np.nan_to_num(cos_gloss, nan=0.0) if beta else 0.0
    return cos_ctx + beta * g + (w * logprior if w else 0.0)


def pick(scores: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group (rows ``offsets[i]:offsets[i+1]``, candidates most frequent first): the index
    within the group of the highest score (ties: the first) and whether it backed off (every
    score NaN → index 0, WordNet's first sense)."""
    offsets = np.asarray(offsets, np.int64)
    n = len(offsets) - 1
    sizes = np.diff(offsets)
    best = np.zeros(n, dtype=np.int64)
    backoff = np.zeros(n, dtype=bool)
    if n == 0 or offsets[-1] == 0:
        return best, backoff
    s = np.where(np.isnan(scores), -np.inf, np.asarray(scores, np.float64))
    grp = np.repeat(np.arange(n), sizes)
    gmax = np.full(n, -np.inf)
    np.maximum.at(gmax, grp, s)
    hit = np.flatnonzero((s == gmax[grp]) & np.isfinite(s))
    g, first = np.unique(grp[hit], return_index=True)
    best[g] = hit[first] - offsets[g]
    backoff[:] = sizes > 0
    backoff[g] = False
    return best, backoff


def nn_predict(query: np.ndarray, candidates: list[str], vectors: dict[str, np.ndarray],
               gloss: dict[str, np.ndarray] | None = None, beta: float = 0.0,
               logprior: np.ndarray | None = None, w: float = 0.0) -> tuple[str, bool]:
    """One instance: the candidate (most frequent first) whose vector is nearest to ``query``
    by cosine (plus ``beta``·gloss cosine, ``w``·log prior); ``(key, backed_off)``, the first
    candidate when none has a vector."""
    q = _unit(np.asarray(query, np.float64))
    cc = np.array([q @ _unit(np.asarray(vectors[k], np.float64)) if k in vectors else np.nan
                   for k in candidates])
    cg = np.array([q @ _unit(np.asarray(gloss[k], np.float64)) if gloss and k in gloss
                   else np.nan for k in candidates])
    lp = np.zeros(len(candidates)) if logprior is None else np.asarray(logprior, np.float64)
    best, back = pick(flat_scores(cc, cg, lp, beta, w), np.array([0, len(candidates)]))
    return candidates[int(best[0])], bool(back[0])


# ------------------------------------------------------------------ building
