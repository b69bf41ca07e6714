"""Gloss classification (LMGC, Wahle et al. 2021) for word-sense disambiguation.

Each instance (a target word in its sentence) becomes one pair per candidate sense:
``("... the " art " of ...", "art : a superior skill that you can learn by study ...")``,
label 1 for a gold sense, 0 otherwise; all pairs of an instance share a ``group`` id. The
predicted sense is the candidate whose pair scores highest (``group_accuracy`` during
training; the official F1 by :func:`evaluate_wsd`). Candidates are the lemma's WordNet senses
for its part of speech, most frequent first; the most-frequent-sense (MFS) baseline predicts
the first.

Training pairs (SemCor) keep the gold senses and up to ``negatives`` other senses of the same
lemma — the most frequent ones first, the hardest negatives for a model that has learnt the
MFS prior — and skip instances with a single candidate (nothing to choose between).

Tasks: ``gloss`` (train: SemCor; dev: SE07; test splits se2, se3, se13, se15, all) for
``lmdistill finetune`` / ``distill``; ``lmdistill wsd`` scores a model on the sets
(:mod:`lmdistill.methods.lexical.wsd`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from .task import Task
from .wordnet import load_wordnet, senses
from .wsd import SETS, Sentence, evaluation_set

LABELS = ["other", "gloss"]
MARK = '"'


def context(sent: Sentence, i: int) -> str:
    """The sentence with the target word marked by quotes (multiword ``_`` → spaces)."""
    words = [t.text.replace("_", " ") for t in sent.tokens]
    words[i] = f"{MARK} {words[i]} {MARK}"
    return " ".join(words)


def gloss_text(lemma: str, gloss: str) -> str:
    return f"{lemma.replace('_', ' ')} : {gloss}"


@dataclass
class Instance:
    id: str
    group: int
    keys: list[str]          # candidate sense keys, in row order
    gold: list[str]


def gloss_pairs(sentences: list[Sentence], gold: dict[str, list[str]], wn,
                negatives: int | None = None, skip_single: bool = False,
                max_instances: int | None = None, seed: int = 0
                ) -> tuple[list[tuple], list[Instance]]:
    """Rows ``(context, "lemma : gloss", label, {"group": g})`` and the instances they came
    from. ``negatives``: keep at most that many non-gold senses per instance (most frequent
    first; None = all, as for evaluation); instances whose gold sense is not a candidate are
    dropped when ``negatives`` is set (training) and kept otherwise (they count as errors)."""
    items = [(s, i, t) for s in sentences for i, t in s.instances]
    if max_instances is not None and max_instances < len(items):
        keep = sorted(random.Random(seed).sample(range(len(items)), max_instances))
        items = [items[k] for k in keep]
    rows, insts = [], []
    for s, i, t in items:
        cands = senses(wn, t.lemma, t.pos)
        g = set(gold.get(t.id, []))
        if negatives is not None:
            if not g & {k for k, _ in cands}:
                continue
            pos = [c for c in cands if c[0] in g]
            neg = [c for c in cands if c[0] not in g][:negatives]
            cands = [c for c in cands if c in pos or c in neg]
        if not cands or (skip_single and len(cands) < 2):
            continue
        grp = len(insts)
        ctx = context(s, i)
        for key, gl in cands:
            rows.append((ctx, gloss_text(t.lemma, gl), int(key in g), {"group": grp}))
        insts.append(Instance(t.id, grp, [k for k, _ in cands], sorted(g)))
    return rows, insts


def mfs_predictions(sentences: list[Sentence], wn) -> dict[str, str]:
    """The most frequent WordNet sense of every instance that has one."""
    out = {}
    for s in sentences:
        for _, t in s.instances:
            cands = senses(wn, t.lemma, t.pos)
            if cands:
                out[t.id] = cands[0][0]
    return out


def sense_prior(insts: list[Instance], wn) -> np.ndarray:
    """Per row (the rows of ``gloss_pairs``: each instance's candidates in order), the log
    prior of its sense from WordNet's tagged counts, add-one smoothed within the instance:
    log((c_k + 1) / Σ_j (c_j + 1)), minus 1e-3 per rank so that equal counts keep WordNet's
    order. Combined with a model's scores as ``s + w·prior``, w = 0 is the model alone and a
    large w the most-frequent-sense baseline."""
    from .wordnet import sense_count

    out = []
    for inst in insts:
        c = np.array([sense_count(wn, k) for k in inst.keys], dtype=np.float64) + 1.0
        out.append(np.log(c / c.sum()) - 1e-3 * np.arange(len(c)))
    return np.concatenate(out) if out else np.zeros(0)


def predictions_from_scores(insts: list[Instance], rows_group: list[int],
                            scores: np.ndarray) -> dict[str, str]:
    """Per instance, the candidate key of its highest-scoring row (ties: the first row, i.e.
    the more frequent sense)."""
    best: dict[int, tuple[float, int]] = {}
    pos_in_group: dict[int, int] = {}
    for r, g in enumerate(rows_group):
        k = pos_in_group.get(g, 0)
        pos_in_group[g] = k + 1
        if g not in best or scores[r] > best[g][0]:
            best[g] = (float(scores[r]), k)
    return {inst.id: inst.keys[best[inst.group][1]] for inst in insts if inst.group in best}


def gloss_task(data_dir=None, negatives: int = 3, max_instances: int | None = None,
               seed: int = 0) -> Task:
    """The ``gloss`` task: SemCor training pairs (``gloss:N``: N seeded SemCor instances);
    SE07 as dev; the other sets as test splits (every candidate sense, grouped per instance:
    ``group_accuracy`` is the primary metric)."""
    def split(name, train=False):
        def load():
            wn = load_wordnet(data_dir)
            sents, gold = evaluation_set(name, data_dir)
            rows, _ = gloss_pairs(sents, gold, wn, negatives if train else None,
                                  skip_single=train,
                                  max_instances=max_instances if train else None, seed=seed)
            return rows
        return load

    loaders = {"train": split("semcor", True), "dev": split("SE07"),
               **{k.lower(): split(k) for k in SETS if k != "SE07"}}
    return Task("gloss", LABELS, ["group_accuracy", "accuracy", "f1"], True, list(loaders),
                gloss_task.__doc__ or "", loaders)
