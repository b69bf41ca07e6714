"""A nearest-neighbour sense teacher in the manner of LMMS (Loureiro & Jorge 2019).

Building (:func:`build_sense_vectors`, one encoder pass over SemCor):
- every tagged token's contextual vector is the mean of its wordpieces' hidden states, kept at
  every hidden state of the encoder (embeddings + each layer), so that the layer choice can be
  measured afterwards without a second pass;
- a seeded ``holdout`` fraction of SemCor *documents* is kept out of the sense vectors: their
  token vectors are stored for tuning (never an evaluation set);
- sense vectors are the means of their tokens' vectors (stored as per-layer sums + counts; an
  instance with several gold keys adds to each).

Senses SemCor lacks (``coverage``, measured on the held-out part):
- ``semcor``: none; a candidate without a vector cannot be chosen;
- ``synset``: the token-weighted mean of the SemCor vectors of the other senses of its synset;
- ``synset+gloss``: then its gloss vector (below) stands in;
- ``lmms``: synset, then hypernym neighbourhood (the SemCor-covered hypernyms and their
  hyponyms, up to 3 levels up; ``similar_tos`` for adjectives), then the mean of its lexname
  (supersense): every sense gets a vector, as LMMS's propagation.

Gloss vectors: the encoder over ``"lemma : definition"``; ``pool="lemma"`` averages the lemma's
wordpieces (a token vector in a defining context, the same space as the test tokens), ``"mean"``
every word's. Computed on demand for the candidates scored and cached (``gloss.safetensors``).

Scoring (:func:`flat_scores`), per candidate sense j of a test token with vector q:
``s_j = cos(q, c_j) + beta * cos(q, g_j) + w * log prior_j`` where c_j is the coverage vector,
g_j the gloss vector (beta = 1 is LMMS's concatenation of normalised vectors) and the prior is
add-one smoothed SemCor counts of the vectors' own tokens. The highest s_j wins (ties: the more
frequent WordNet sense); when no candidate has a vector, the back-off is WordNet's first
sense. Layers ``layers`` (hidden-state indices) are combined by ``sum`` or ``concat`` (of
L2-normalised layers), optionally after subtracting the mean SemCor token vector from every
vector (``center="global"``: the encoder's shared direction, which makes all cosines high).
All choices are tuned on the held-out SemCor documents
(:func:`tune`), then the final vectors use all of SemCor.

Files (a folder, never pickles): ``index.json`` (encoder, keys, held-out instances, the tuned
choice), ``senses.safetensors`` (``sums`` [S, H, d], ``counts`` [S]), ``heldout.safetensors``
(``vectors`` [N, H, d]), ``gloss.safetensors`` (``vectors`` [G, 2, H, d] float16: pools lemma,
mean).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...data.wordnet import load_wordnet, senses
from ...data.wsd import SETS, Sentence, evaluation_set, score
from ...errors import DataError

COVERAGES = ("semcor", "synset", "synset+gloss", "lmms")
POOLS = ("lemma", "mean")


# ------------------------------------------------------------------ encoder
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
        self.model = AutoModel.from_pretrained(hub.resolve(ref)).eval()
        cfg = self.model.config
        self.n_states, self.dim = cfg.num_hidden_layers + 1, cfg.hidden_size
        self.truncated = 0

    @torch.inference_mode()
    def __call__(self, items: list[tuple[list[str], list[list[int]]]], progress: bool = False,
                 desc: str = "encode") -> list[np.ndarray]:
        words = [[w.replace("_", " ") or "-" for w in ws] for ws, _ in items]
        enc = self.tok(words, is_split_into_words=True, truncation=True,
                       max_length=self.max_length)
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
            ids = torch.zeros(len(b), L, dtype=torch.long)
            mask = torch.zeros(len(b), L, dtype=torch.long)
            for r, i in enumerate(b):
                ids[r, :lens[i]] = torch.tensor(enc["input_ids"][i])
                mask[r, :lens[i]] = 1
            hs = self.model(input_ids=ids, attention_mask=mask,
                            output_hidden_states=True).hidden_states
            h = torch.stack(hs, 1)  # [B, H, L, d]
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
@dataclass
class Target:
    id: str
    lemma: str
    pos: str
    gold: list[str]


def _items(sents: list[Sentence], gold: dict[str, list[str]]):
    items, targets = [], []
    for s in sents:
        inst = s.instances
        if not inst:
            continue
        items.append(([t.text for t in s.tokens], [[i] for i, _ in inst]))
        targets.append([Target(t.id, t.lemma, t.pos, list(gold.get(t.id, []))) for _, t in inst])
    return items, targets


def _save(path: Path, tensors: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    tmp = path.with_suffix(".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
    tmp.rename(path)


def _load(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def build_sense_vectors(out: str | Path, encoder: str = "minilm-l6", corpus="semcor",
                        data_dir=None, holdout: float = 0.05, seed: int = 0,
                        max_length: int = 512, batch_tokens: int = 8192,
                        chunk_sentences: int = 2000, progress: bool = False,
                        encode=None) -> dict:
    """One encoder pass over ``corpus`` (SemCor, any Raganato set name, or a ``(sentences,
    gold)`` pair; documents are the first part of sentence ids) → the folder ``out`` (see the
    module docstring). ``encode``: a :class:`TokenEncoder`-like callable
    (default: ``TokenEncoder(encoder)``). Returns the index (without the key list)."""
    out = Path(out)
    if (out / "index.json").exists():
        return _index(out)
    t0 = time.time()
    sents, gold = (evaluation_set(corpus, data_dir) if isinstance(corpus, str) else corpus)
    corpus = corpus if isinstance(corpus, str) else "given"
    enc = encode or TokenEncoder(encoder, max_length, batch_tokens)
    docs = sorted({s.id.split(".")[0] for s in sents})
    n_held = int(round(holdout * len(docs))) if holdout > 0 else 0
    held = set(random.Random(seed).sample(docs, n_held)) if n_held else set()
    keys = sorted({k for s in sents if s.id.split(".")[0] not in held
                   for _, t in s.instances for k in gold.get(t.id, [])})
    row = {k: i for i, k in enumerate(keys)}
    sums = np.zeros((len(keys), enc.n_states, enc.dim), np.float32)
    counts = np.zeros(len(keys), np.int64)
    held_vecs, held_targets = [], []
    for c in range(0, len(sents), chunk_sentences):
        chunk = sents[c:c + chunk_sentences]
        items, targets = _items(chunk, gold)
        vecs = enc(items, progress=progress, desc=f"{corpus} {c // chunk_sentences + 1}/"
                   f"{(len(sents) + chunk_sentences - 1) // chunk_sentences}")
        for v, ts in zip(vecs, targets):
            for t, x in zip(ts, v):
                if t.id.split(".")[0] in held:
                    held_vecs.append(x)
                    held_targets.append(t)
                    continue
                for k in t.gold:
                    sums[row[k]] += x
                    counts[row[k]] += 1
    out.mkdir(parents=True, exist_ok=True)
    _save(out / "senses.safetensors", {"sums": sums, "counts": counts})
    hv = (np.stack(held_vecs) if held_vecs
          else np.zeros((0, enc.n_states, enc.dim), np.float32))
    _save(out / "heldout.safetensors", {"vectors": hv})
    index = {"encoder": getattr(enc, "ref", encoder), "corpus": corpus, "n_states": enc.n_states,
             "dim": enc.dim, "max_length": max_length, "holdout": holdout, "seed": seed,
             "documents": len(docs), "heldout_documents": sorted(held),
             "sentences": len(sents), "instances": len(gold),
             "train_instances": int(sum(1 for s in sents if s.id.split(".")[0] not in held
                                        for _ in s.instances)),
             "senses": len(keys), "truncated_targets": getattr(enc, "truncated", 0),
             "seconds": round(time.time() - t0, 1), "keys": keys,
             "heldout": [asdict(t) for t in held_targets], "gloss_keys": [], "choice": None}
    (out / "index.json").write_text(json.dumps(index))
    return _index(out)


def _index(out: Path, full: bool = False) -> dict:
    ix = json.loads((Path(out) / "index.json").read_text())
    if not full:
        ix = {k: v for k, v in ix.items() if k not in ("keys", "heldout", "gloss_keys")}
    return ix


# ------------------------------------------------------------------ the teacher
@dataclass
class Choice:
    layers: tuple[int, ...] = (-1,)
    combine: str = "sum"
    coverage: str = "lmms"
    pool: str = "lemma"
    beta: float = 0.0
    w: float = 0.0
    center: str = "none"


class SenseTeacher:
    """The nearest-neighbour teacher over a folder of :func:`build_sense_vectors`.
    ``vectors="all"`` uses every SemCor token (train + held-out part), ``"train"`` only the
    part the choice was tuned with."""

    def __init__(self, folder: str | Path, data_dir=None, vectors: str = "all", encode=None):
        self.dir = Path(folder)
        if not (self.dir / "index.json").exists():
            raise DataError(f"no sense vectors in {self.dir} (build them first)")
        self.ix = _index(self.dir, full=True)
        self.data_dir = data_dir
        self.wn = load_wordnet(data_dir)
        self._encode = encode
        st = _load(self.dir / "senses.safetensors")
        sums, counts = st["sums"].astype(np.float32), st["counts"].astype(np.int64)
        keys = list(self.ix["keys"])
        if vectors == "all" and self.ix["heldout"]:
            hv = _load(self.dir / "heldout.safetensors")["vectors"]
            row = {k: i for i, k in enumerate(keys)}
            extra = sorted({k for t in self.ix["heldout"] for k in t["gold"] if k not in row})
            for k in extra:
                row[k] = len(keys)
                keys.append(k)
            sums = np.concatenate([sums, np.zeros((len(extra), *sums.shape[1:]), np.float32)])
            counts = np.concatenate([counts, np.zeros(len(extra), np.int64)])
            for t, x in zip(self.ix["heldout"], hv):
                for k in t["gold"]:
                    sums[row[k]] += x
                    counts[row[k]] += 1
        elif vectors not in ("all", "train"):
            raise ValueError("vectors: all or train")
        self.keys, self.counts = keys, counts
        self.row = {k: i for i, k in enumerate(keys)}
        self.means = sums / np.maximum(counts, 1)[:, None, None]
        #: the mean SemCor token vector per hidden state (``center="global"`` subtracts it)
        self.mean_token = sums.sum(0) / max(int(counts.sum()), 1)
        self._prop: dict[str, np.ndarray | None] = {}
        self._gloss = self._load_gloss()

    # ---- encoder and glosses
    @property
    def encode(self):
        if self._encode is None:
            self._encode = TokenEncoder(self.ix["encoder"], self.ix.get("max_length", 512))
        return self._encode

    def _load_gloss(self) -> dict[str, int]:
        p = self.dir / "gloss.safetensors"
        self._gvec = (_load(p)["vectors"] if p.exists() and self.ix["gloss_keys"] else
                      np.zeros((0, 2, self.ix["n_states"], self.ix["dim"]), np.float16))
        return {k: i for i, k in enumerate(self.ix["gloss_keys"])}

    def ensure_glosses(self, keys, progress: bool = False) -> int:
        """Encode (and cache in the folder) the gloss vectors of ``keys`` not yet there."""
        todo = sorted({k for k in keys if k not in self._gloss})
        items, ok = [], []
        for k in todo:
            try:
                lem = self.wn.lemma_from_key(k)
            except Exception:  # noqa: BLE001 - a key WordNet lacks has no gloss
                continue
            lw = lem.name().split("_")
            words = lw + [":"] + lem.synset().definition().split()
            items.append((words, [list(range(len(lw))), list(range(len(words)))]))
            ok.append(k)
        if not ok:
            return 0
        vecs = self.encode(items, progress=progress, desc="glosses")
        new = np.stack(vecs).astype(np.float16)
        self._gvec = np.concatenate([self._gvec, new]) if len(self._gvec) else new
        self.ix["gloss_keys"] = list(self.ix["gloss_keys"]) + ok
        self._gloss = {k: i for i, k in enumerate(self.ix["gloss_keys"])}
        _save(self.dir / "gloss.safetensors", {"vectors": self._gvec})
        ix = json.loads((self.dir / "index.json").read_text())
        ix["gloss_keys"] = self.ix["gloss_keys"]
        (self.dir / "index.json").write_text(json.dumps(ix))
        return len(ok)

    # ---- coverage vectors ([H, d] means) for senses SemCor lacks
    def _synset(self, key: str):
        try:
            return self.wn.lemma_from_key(key).synset()
        except Exception:  # noqa: BLE001
            return None

    def _tables(self):
        if hasattr(self, "_syn_sum"):
            return
        self._syn_sum: dict[str, np.ndarray] = {}
        self._syn_n: dict[str, int] = {}
        lex_sum: dict[str, np.ndarray] = {}
        lex_n: dict[str, int] = {}
        for k, i in self.row.items():
            n = int(self.counts[i])
            syn = self._synset(k) if n else None
            if syn is None:
                continue
            s = self.means[i] * n
            name = syn.name()
            self._syn_sum[name] = self._syn_sum.get(name, 0) + s
            self._syn_n[name] = self._syn_n.get(name, 0) + n
            lx = syn.lexname()
            lex_sum[lx] = lex_sum.get(lx, 0) + s
            lex_n[lx] = lex_n.get(lx, 0) + n
        self._lex = {k: v / lex_n[k] for k, v in lex_sum.items()}

    def _syn_vec(self, syn) -> np.ndarray | None:
        n = self._syn_n.get(syn.name())
        return self._syn_sum[syn.name()] / n if n else None

    def _hyper_vec(self, syn) -> np.ndarray | None:
        frontier = [syn]
        for _ in range(3):
            ups = [h for s in frontier for h in s.hypernyms() + s.instance_hypernyms()]
            if not ups and syn.pos() in ("a", "s"):
                ups = [h for s in frontier for h in s.similar_tos()]
            if not ups:
                return None
            near = {h.name(): h for u in ups for h in [u, *u.hyponyms()]}
            vs = [(self._syn_sum[n], self._syn_n[n]) for n in near if n in self._syn_n]
            if vs:
                return sum(v for v, _ in vs) / sum(c for _, c in vs)
            frontier = ups
        return None

    def coverage_vector(self, key: str, coverage: str) -> np.ndarray | None:
        """The [H, d] vector of ``key`` under ``coverage`` (None: no vector; the gloss
        stand-in of ``synset+gloss`` is applied by the scorer)."""
        i = self.row.get(key)
        if i is not None and self.counts[i]:
            return self.means[i]
        if coverage == "semcor":
            return None
        ck = (key, coverage)
        if ck in self._prop:
            return self._prop[ck]
        self._tables()
        syn = self._synset(key)
        v = None
        if syn is not None:
            v = self._syn_vec(syn)
            if v is None and coverage == "lmms":
                v = self._hyper_vec(syn)
                if v is None:
                    v = self._lex.get(syn.lexname())
        self._prop[ck] = v
        return v

    def logprior(self, cands: list[str]) -> np.ndarray:
        c = np.array([self.counts[self.row[k]] if k in self.row else 0 for k in cands],
                     np.float64) + 1.0
        return np.log(c / c.sum()) - 1e-3 * np.arange(len(c))

    # ---- flattened candidate rows for a list of (query [H, d], candidates)
    def rows(self, queries: np.ndarray, cands: list[list[str]], choice: Choice) -> dict:
        """The per-candidate cosines and log priors of every instance, flattened
        (``offsets`` delimit each instance's rows)."""
        m = self.mean_token if choice.center == "global" else 0.0
        q = _unit(combine_layers(queries.astype(np.float32) - m, choice.layers, choice.combine))
        uniq = sorted({k for ks in cands for k in ks})
        u = {k: i for i, k in enumerate(uniq)}
        H, d = self.ix["n_states"], self.ix["dim"]
        cov = np.zeros((len(uniq), H, d), np.float32)
        has_c = np.zeros(len(uniq), bool)
        glo = np.zeros((len(uniq), H, d), np.float32)
        has_g = np.zeros(len(uniq), bool)
        p = POOLS.index(choice.pool)
        for k, i in u.items():
            v = self.coverage_vector(k, choice.coverage)
            if v is not None:
                cov[i], has_c[i] = v, True
            gi = self._gloss.get(k)
            if gi is not None:
                glo[i], has_g[i] = self._gvec[gi, p], True
        cov = _unit(combine_layers(cov - m, choice.layers, choice.combine))
        glo = _unit(combine_layers(glo - m, choice.layers, choice.combine))
        ku = np.array([u[k] for ks in cands for k in ks], np.int64)
        qi = np.repeat(np.arange(len(cands)), [len(ks) for ks in cands])
        cc = np.empty(len(ku))
        cg = np.empty(len(ku))
        for a in range(0, len(ku), 8192):
            sl = slice(a, a + 8192)
            cc[sl] = np.einsum("ij,ij->i", cov[ku[sl]], q[qi[sl]])
            cg[sl] = np.einsum("ij,ij->i", glo[ku[sl]], q[qi[sl]])
        cg[~has_g[ku]] = np.nan
        miss = ~has_c[ku]
        cc[miss] = cg[miss] if choice.coverage == "synset+gloss" else np.nan
        lp = [x for ks in cands for x in self.logprior(ks)]
        off = np.concatenate([[0], np.cumsum([len(ks) for ks in cands])]).astype(np.int64)
        return {"cos_ctx": cc, "cos_gloss": cg, "logprior": np.array(lp, np.float64),
                "offsets": off}

    def predict(self, ids: list[str], queries: np.ndarray, cands: list[list[str]],
                choice: Choice | None = None, rows: dict | None = None) -> tuple[dict, int]:
        """``({id: key}, backed-off count)``; instances without candidates are unanswered."""
        choice = choice or self.choice
        r = rows or self.rows(queries, cands, choice)
        best, back = pick(flat_scores(r["cos_ctx"], r["cos_gloss"], r["logprior"], choice.beta,
                                      choice.w), r["offsets"])
        pred = {i: ks[b] for i, ks, b in zip(ids, cands, best) if ks}
        return pred, int(sum(b for b, ks in zip(back, cands) if ks))

    @property
    def choice(self) -> Choice:
        c = self.ix.get("choice") or {}
        c = {k: v for k, v in c.items() if k in Choice.__dataclass_fields__}
        if "layers" in c:
            c["layers"] = tuple(c["layers"])
        return Choice(**c)

    def candidates(self, lemma: str, pos: str) -> list[str]:
        return [k for k, _ in senses(self.wn, lemma, pos)]

    def queries(self, sents: list[Sentence], gold: dict, progress: bool = False):
        """Test tokens: ids, vectors [N, H, d], candidate lists, gold lists."""
        items, targets = _items(sents, gold)
        vecs = self.encode(items, progress=progress, desc="test tokens") if items else []
        ts = [t for tt in targets for t in tt]
        q = (np.concatenate(vecs) if vecs
             else np.zeros((0, self.ix["n_states"], self.ix["dim"]), np.float32))
        return ([t.id for t in ts], q, [self.candidates(t.lemma, t.pos) for t in ts],
                [t.gold for t in ts])


# ------------------------------------------------------------------ tuning and evaluation
LAYER_GRID = ((-1,), (-2,), (-3,), (-2, -1), (-4, -3, -2, -1), "all")
GRID = {"center": ("none", "global"), "combine": ("sum", "concat"), "coverage": COVERAGES,
        "pool": POOLS,
        "beta": (0.0, 0.25, 0.5, 1.0, 2.0), "w": (0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32)}


def _layer_grid(n_states: int):
    """The layer grid for an encoder with ``n_states`` hidden states (embeddings + layers):
    combinations reaching the embeddings or beyond are left out, duplicates once."""
    out, seen = [], set()
    for x in LAYER_GRID:
        x = tuple(range(1, n_states)) if x == "all" else x
        same = tuple(i % n_states for i in x)
        if all(-n_states < i < 0 or 0 < i < n_states for i in x) and same not in seen:
            out.append(x)
            seen.add(same)
    return out


def split_by_candidates(gold: dict, pred: dict, ncands: dict, at: int = 4) -> dict:
    """The official F1 over instances with ≤ ``at`` candidates and over those with more."""
    out = {}
    for name, sel in ((f"le{at}", lambda n: n <= at), (f"gt{at}", lambda n: n > at)):
        g = {i: k for i, k in gold.items() if sel(ncands.get(i, 0))}
        out[name] = {**score(g, {i: k for i, k in pred.items() if i in g}), "instances": len(g)}
    return out


def tune(folder: str | Path, data_dir=None, progress: bool = False, grid: dict | None = None,
         encode=None) -> dict:
    """Every choice of the grid scored on the held-out SemCor documents with the vectors of
    the rest; the best (F1; ties: the earlier, simpler choice) is written into ``index.json``
    (``choice``) and returned with the table."""
    grid = {**GRID, **(grid or {})}
    t = SenseTeacher(folder, data_dir, vectors="train", encode=encode)
    if not t.ix["heldout"]:
        raise DataError("no held-out SemCor part to tune on (build with holdout > 0)")
    t0 = time.time()
    hv = _load(t.dir / "heldout.safetensors")["vectors"]
    held = [Target(**x) for x in t.ix["heldout"]]
    cands = [t.candidates(x.lemma, x.pos) for x in held]
    keep = [i for i, c in enumerate(cands) if len(c) > 1]  # a single candidate is no choice
    ids = [held[i].id for i in keep]
    gold = {held[i].id: held[i].gold for i in keep}
    cands = [cands[i] for i in keep]
    hv = hv[keep]
    t.ensure_glosses({k for c in cands for k in c}, progress)
    layers_grid = grid.get("layers") or _layer_grid(t.ix["n_states"])
    table = []
    for layers in layers_grid:
        for combine in grid["combine"]:
            if combine == "concat" and len(layers) == 1:
                continue
            for coverage in grid["coverage"]:
                for pool, center in [(p, c) for p in grid["pool"] for c in grid["center"]]:
                    base = Choice(tuple(layers), combine, coverage, pool, center=center)
                    r = t.rows(hv, cands, base)
                    for beta in grid["beta"]:
                        if pool != grid["pool"][0] and beta == 0 and coverage != "synset+gloss":
                            continue  # the pool does not matter then
                        for w in grid["w"]:
                            c = Choice(tuple(layers), combine, coverage, pool, beta, w, center)
                            pred, back = t.predict(ids, hv, cands, c, r)
                            table.append({**asdict(c), "f1": score(gold, pred)["f1"],
                                          "backoff": back})
    best = max(table, key=lambda x: x["f1"])  # max keeps the first of equal F1s
    ix = json.loads((t.dir / "index.json").read_text())
    ix["choice"] = {k: list(best[k]) if k == "layers" else best[k] for k in asdict(Choice())}
    (t.dir / "index.json").write_text(json.dumps(ix))
    mfs = {i: c[0] for i, c in zip(ids, cands)}
    return {"choice": ix["choice"], "heldout_f1": best["f1"],
            "heldout_mfs_f1": score(gold, mfs)["f1"], "heldout_instances": len(ids),
            "grid_size": len(table), "seconds": round(time.time() - t0, 1),
            "table": sorted(table, key=lambda x: -x["f1"])[:50]}


def evaluate_lmms(folder: str | Path, sets=("SE2", "SE3", "SE07", "SE13", "SE15", "ALL"),
                  data_dir=None, vectors: str = "all", progress: bool = False,
                  encode=None, choice: Choice | None = None) -> dict:
    """Official F1 of the teacher (its tuned choice, or ``choice``) on the Raganato sets, with
    the MFS baseline on the same instances and both split by candidates (≤ 4 vs > 4)."""
    t = SenseTeacher(folder, data_dir, vectors=vectors, encode=encode)
    choice = choice or t.choice
    out: dict = {"sets": {}, "sense_vectors": str(folder), "vectors": vectors,
                 "choice": asdict(choice), "encoder": t.ix["encoder"]}
    cache: dict[str, tuple] = {}
    names = list(sets)
    if "ALL" in [n.upper() for n in names]:  # ALL holds the five: one encoder pass
        names = sorted(names, key=lambda n: n.upper() != "ALL")
    for name in names:
        t0 = time.time()
        sents, gold = evaluation_set(name, data_dir)
        pre = "" if name.upper() == "ALL" else f"{SETS.get(name.upper(), name)}."
        if pre and all(pre + i in cache for i in gold):
            got = [cache[pre + i] for i in gold]
            ids = list(gold)
            q = np.stack([g[0] for g in got]) if got else np.zeros((0,))
            cands = [g[1] for g in got]
        else:
            ids, q, cands, _ = t.queries(sents, gold, progress)
            if name.upper() == "ALL":
                cache = {i: (v, c) for i, v, c in zip(ids, q, cands)}
        t.ensure_glosses({k for c in cands for k in c}, progress)
        pred, back = t.predict(ids, q, cands, choice)
        mfs = {i: c[0] for i, c in zip(ids, cands) if c}
        nc = {i: len(c) for i, c in zip(ids, cands)}
        out["sets"][name] = {
            "model": score(gold, pred), "mfs": score(gold, mfs), "instances": len(gold),
            "backoff": back, "seconds": round(time.time() - t0, 1),
            "by_candidates": {"model": split_by_candidates(gold, pred, nc),
                              "mfs": split_by_candidates(gold, mfs, nc)}}
    out["sets"] = {n: out["sets"][n] for n in sets}
    return out


def prepare(folder: str | Path, encoder: str = "minilm-l6", data_dir=None,
            holdout: float = 0.05, seed: int = 0, progress: bool = False) -> dict:
    """The teacher folder ready to score: built from SemCor with ``encoder`` when it has no
    vectors yet, tuned on its held-out part when it has no choice yet. Returns its index."""
    build_sense_vectors(folder, encoder, "semcor", data_dir, holdout, seed, progress=progress)
    if not _index(Path(folder)).get("choice"):
        tune(folder, data_dir, progress)
    return _index(Path(folder))
