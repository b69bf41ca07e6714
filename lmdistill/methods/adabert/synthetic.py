"""Issue 30's check of the AdaBERT search on a task only an order-aware op can solve.

Each row is 6-12 random filler tokens with the two tokens A, B adjacent somewhere: label 1 for
"A B", 0 for "B A". The head pools over positions (mean and max), so identity and the
(symmetric) pools see a bag of words and cannot tell the labels apart; a convolution 3, 5 or 7
wide can (the dilated ones skip the neighbour, so they cannot either). The search runs on a tiny
supernet (2 cells at most, 2 nodes, width 16) without probes (γ = 0), with costs = parameter
shares of the search space and every other setting at its default. A search that works keeps
an order-aware op at the default β and only cheap ones at a large β.

``benchmarks/adabert_synthetic.py`` writes the figures; ``tests/e2e/test_adabert_synthetic.py``
checks them, both through :func:`search_bigram` at :data:`STEPS`.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ... import config as C
from ...data.collate import Encoded, collate
from ...models.adabert import OPS, AdaBertConfig, AdaBertForSequenceClassification, edges_of
from ...train.loop import Trainer
from .costs import op_costs
from .objective import PROBE_ROW, AdaBertSearchObjective, genotype_cost

#: the ops that see the order of two neighbouring tokens
ORDER_AWARE = ("conv3", "conv5", "conv7")
#: search steps of the benchmark and the test (the first 20% are the weights' warm-up)
STEPS = 600
A, B = 5, 6


def bigram_rows(n: int, seed: int, offset: int = 0) -> Encoded:
    """``n`` rows of the ordered-bigram task (vocabulary 50: A = 5, B = 6, filler 10-40)."""
    rng = random.Random(seed)
    ids, labels = [], []
    for _ in range(n):
        seq = [rng.randint(10, 40) for _ in range(rng.randint(6, 12))]
        p, y = rng.randint(0, len(seq) - 2), rng.randint(0, 1)
        seq[p], seq[p + 1] = (A, B) if y else (B, A)
        ids.append(seq)
        labels.append(y)
    return Encoded(ids, None, labels, list(range(n)), [("x", None)] * n, 0,
                   extras={PROBE_ROW: list(range(offset, offset + n))})


@torch.no_grad()
def derived_accuracy(obj: AdaBertSearchObjective, enc: Encoded, genotype: dict) -> float:
    """Accuracy on ``enc`` of the derived architecture with the supernet's weights (the edges
    it drops as ``zero``)."""
    ops, model = list(obj.model.config.ops), obj.model.eval()
    edges = edges_of(len(genotype["nodes"]))
    w = F.one_hot(torch.full((len(edges),), ops.index("zero")), len(ops)).float()
    for j, node in enumerate(genotype["nodes"]):
        for i, op in node:
            w[edges.index((int(i), j))] = F.one_hot(torch.tensor(ops.index(op)), len(ops))
    b = collate(enc, list(range(len(enc))))
    outs = model.cell_outputs(b["input_ids"], b["attention_mask"], None, w,
                              depth=int(genotype["cells"]), sampled=True)
    pred = model.head(outs[-1], b["attention_mask"]).argmax(-1)
    model.train()
    return float((pred == b["labels"]).float().mean())


def search_bigram(beta: float, out_dir: str | Path, steps: int = STEPS, seed: int = 0,
                  threads: int = 1, **settings) -> dict:
    """One search at ``beta`` (``settings``: other ``AdaBertSettings`` fields) → the derived
    architecture, its order-aware ops, its cost (:func:`genotype_cost`) and accuracy."""
    t0 = time.time()
    torch.manual_seed(seed)
    cfg = AdaBertConfig(vocab_size=50, embedding_size=16, hidden=16, max_cells=2, nodes=2,
                        num_labels=2, dropout=0.0)
    s = C.AdaBertSettings(**{"max_cells": 2, "nodes": 2, "hidden": 16, "gamma": 0.0,
                             "cost": "params", **settings, "beta": beta})
    costs = [op_costs(OPS, 16, "params")["normalised"][o] for o in OPS]
    train, held = bigram_rows(512, seed), bigram_rows(256, seed + 1, 512)
    obj = AdaBertSearchObjective(AdaBertForSequenceClassification(cfg), torch.zeros(768, 3, 2),
                                 [0.5] * 3, costs, held, s, seed)
    shutil.rmtree(out_dir, ignore_errors=True)  # every search starts afresh (deterministic)
    Trainer(obj, train, C.TrainConfig(max_steps=steps, batch_size=32, lr=3e-3,
                                      warmup_ratio=0.05, progress=False, log_every=1000,
                                      mixed_precision="no", num_threads=threads),
            out_dir).fit()
    geno = obj.genotype()
    kept = [op for node in geno["nodes"] for _, op in node]
    return {"beta": beta, "architecture": geno, "convs": sum("conv" in o for o in kept),
            "order_aware": sum(o in ORDER_AWARE for o in kept), "edges": len(kept),
            "cost": round(genotype_cost(geno, OPS, costs, 2), 5),
            "heldout_accuracy": round(derived_accuracy(obj, held, geno), 4),
            "seconds": round(time.time() - t0, 1)}
