"""Tuning the NN sense teacher on held-out SemCor documents (never on an evaluation set),
evaluating it on the Raganato sets, and ``prepare`` (build + tune once, for ``lmdistill wsd
--sense-vectors``)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ...data.wsd import SETS, evaluation_set, score
from ...errors import DataError
from .lmms import (COVERAGES, POOLS, Choice, SenseTeacher, Target, _index,  # noqa: F401
                   _load, build_sense_vectors)


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
