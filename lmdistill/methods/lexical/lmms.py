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

from ...data.wordnet import load_wordnet, senses
from ...data.wsd import Sentence, load_corpus
from ...errors import DataError
from .encoder import (TokenEncoder, _unit, combine_layers, flat_scores, nn_predict,  # noqa: F401
                      pick)

COVERAGES = ("semcor", "synset", "synset+gloss", "lmms")
POOLS = ("lemma", "mean")


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
    """One encoder pass over ``corpus`` (SemCor, any Raganato set name, ``name:N`` for its
    first N documents, or a ``(sentences, gold)`` pair; documents are the first part of
    sentence ids) → the folder ``out`` (see the
    module docstring). ``encode``: a :class:`TokenEncoder`-like callable
    (default: ``TokenEncoder(encoder)``). Returns the index (without the key list)."""
    out = Path(out)
    if (out / "index.json").exists():
        return _index(out)
    t0 = time.time()
    sents, gold = (load_corpus(corpus, data_dir) if isinstance(corpus, str) else corpus)
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
