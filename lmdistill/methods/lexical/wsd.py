"""WSD evaluation of gloss classifiers (and the MFS baseline) with the official scorer."""

from __future__ import annotations

import torch

from ...data.gloss import (LABELS, gloss_pairs, mfs_predictions, predictions_from_scores,
                            sense_prior)
from ...data.wordnet import load_wordnet
from ...data.wsd import SETS, evaluation_set, score
from ..finetune import model_inputs
from ...train.predict import predict


def evaluate_wsd(model: str | None, sets=("SE2", "SE3", "SE07", "SE13", "SE15", "ALL"),
                 data_dir=None, batch_size: int = 128, max_length: int = 128,
                 progress: bool = False, prior_weights: tuple[float, ...] = ()) -> dict:
    """WSD precision / recall / F1 of a gloss classifier (``model``: a folder trained on the
    ``gloss`` task) on the Raganato sets, with the MFS baseline on the same sets; ``model``
    None scores MFS only. ``prior_weights``: also score ``s + w·prior`` for each w
    (``res["sets"][name]["model_prior"][str(w)]``; :func:`lmdistill.data.gloss.sense_prior`),
    from the same model scores, so :func:`tune_prior` can pick w on a dev set."""
    import time

    from ...data.collate import encode
    from ...data.task import Example
    from ...models import hub

    wn = load_wordnet(data_dir)
    out: dict = {"sets": {}}
    m = tok = None
    if model is not None:
        tok = hub.load_tokenizer(model)
        m = hub.load_classifier(model, len(LABELS))
        m.eval()
        from ...models.runtimes import is_onnx_dir, method_of

        path = hub.resolve(model)
        gpu = torch.cuda.is_available() and not is_onnx_dir(path) and not method_of(path)
        device = torch.device("cuda" if gpu else "cpu")  # INT8 / ONNX models stay on the CPU
        m = m.to(device) if gpu else m
    preds: dict[str, dict] = {}  # set -> the model's predictions (ALL reuses its parts')
    for name in sets:
        sents, gold = evaluation_set(name, data_dir)
        res = {"mfs": score(gold, mfs_predictions(sents, wn)), "instances": len(gold)}
        merged = _merged_all(name, gold, preds) if m is not None else None
        if merged is not None:  # ALL is the five sets concatenated: no second inference
            res["model"] = score(gold, merged[0.0])
            res["merged_from"] = list(PARTS)
            if prior_weights:
                res["model_prior"] = {str(w): score(gold, merged[w]) for w in prior_weights}
        elif m is not None:
            rows, insts = gloss_pairs(sents, gold, wn)
            enc = encode([Example(a, b, y, i, meta) for i, (a, b, y, meta) in enumerate(rows)],
                         tok, max_length)
            t0 = time.time()
            logits = predict(lambda b: m(**model_inputs(b)).logits, enc, batch_size,
                             progress=progress, desc=f"WSD {name}", device=device)
            secs = time.time() - t0
            s = logits[:, 1] - logits[:, 0]
            groups = [r[3]["group"] for r in rows]
            pred = {0.0: predictions_from_scores(insts, groups, s)}
            if prior_weights:
                prior = sense_prior(insts, wn)
                pred.update({w: predictions_from_scores(insts, groups, s + w * prior)
                             for w in prior_weights})
                res["model_prior"] = {str(w): score(gold, pred[w]) for w in prior_weights}
            preds[name.upper()] = (pred, set(gold))
            res["model"] = score(gold, pred[0.0])
            res["pairs"], res["seconds"] = len(rows), round(secs, 1)
        out["sets"][name] = res
    out["model"] = model
    if m is not None:
        out["device"] = str(device)
    return out


#: the sets ALL concatenates; its instance ids are theirs prefixed by the set's folder name
PARTS = ("SE2", "SE3", "SE07", "SE13", "SE15")


def _merged_all(name: str, gold: dict, preds: dict) -> dict | None:
    """ALL's predictions from its five parts' (ids ``senseval2.d000.s000.t000`` = SE2's
    ``d000.s000.t000``; the same sentences, so the same pairs and scores), when all five were
    scored in this call and their instances are exactly ALL's."""
    if name.upper() != "ALL" or any(p not in preds for p in PARTS):
        return None
    ids = {f"{SETS[p]}.{i}" for p in PARTS for i in preds[p][1]}
    if ids != set(gold):
        return None
    return {w: {f"{SETS[p]}.{i}": k for p in PARTS for i, k in preds[p][0][w].items()}
            for w in preds[PARTS[0]][0]}


def tune_prior(res: dict, dev: str = "SE07") -> dict:
    """The prior weight with the best F1 on ``dev`` (ties: the smaller weight) and every set's
    scores with it: ``{"weight", "dev", "sets": {name: score}}``."""
    grid = res["sets"][dev]["model_prior"]
    w = max(grid, key=lambda k: (grid[k]["f1"], -float(k)))
    return {"weight": float(w), "dev": dev,
            "sets": {n: r["model_prior"][w] for n, r in res["sets"].items()
                     if "model_prior" in r}}
