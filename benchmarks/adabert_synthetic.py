"""Issue 30's synthetic check of the AdaBERT search: a task only an order-aware op can solve.

Each row is a sequence of random filler tokens with the two tokens A, B adjacent somewhere:
label 1 for "A B", 0 for "B A". The head pools over positions (mean and max), so identity and
the (symmetric) pools see a bag of words and cannot tell the labels apart; a convolution can.
The search (probes off: γ = 0, costs = parameter shares) runs at β in --betas; the derived
architecture of each is written to ``results/adabertsyn_bigram_<steps>steps.json``.

    .venv/bin/python benchmarks/adabert_synthetic.py --betas 0 4 100
"""

from __future__ import annotations

import argparse
import random
import shlex
import shutil
import sys
import time
from pathlib import Path

import torch

from common import write_result
from lmdistill import config as C
from lmdistill.data.collate import Encoded
from lmdistill.methods.adabert.costs import op_costs
from lmdistill.methods.adabert.objective import PROBE_ROW, AdaBertSearchObjective
from lmdistill.models.adabert import OPS, AdaBertConfig, AdaBertForSequenceClassification
from lmdistill.train.loop import Trainer

ap = argparse.ArgumentParser()
ap.add_argument("--betas", nargs="+", type=float, default=[0.0, 4.0, 100.0])
ap.add_argument("--steps", type=int, default=300)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--root", default="runs/bench/adabert-synthetic")
a = ap.parse_args()
torch.set_num_threads(a.threads)
cmd = " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv])


def bigram_rows(n: int, seed: int, offset: int = 0) -> Encoded:
    rng = random.Random(seed)
    ids, labels = [], []
    for _ in range(n):
        seq = [rng.randint(10, 40) for _ in range(rng.randint(6, 12))]
        p, y = rng.randint(0, len(seq) - 2), rng.randint(0, 1)
        seq[p], seq[p + 1] = (5, 6) if y else (6, 5)
        ids.append(seq)
        labels.append(y)
    return Encoded(ids, None, labels, list(range(n)), [("x", None)] * n, 0,
                   extras={PROBE_ROW: list(range(offset, offset + n))})


rows = []
for beta in a.betas:
    t0 = time.time()
    torch.manual_seed(a.seed)
    cfg = AdaBertConfig(vocab_size=50, embedding_size=16, hidden=16, max_cells=2, nodes=2,
                        num_labels=2, dropout=0.0)
    s = C.AdaBertSettings(max_cells=2, nodes=2, hidden=16, beta=beta, gamma=0.0,
                          arch_start=0.1, cost="params")
    costs = op_costs(OPS, 16, "params")["normalised"]
    train, held = bigram_rows(512, a.seed), bigram_rows(256, a.seed + 1, 512)
    obj = AdaBertSearchObjective(AdaBertForSequenceClassification(cfg), torch.zeros(768, 3, 2),
                                 [0.5] * 3, [costs[o] for o in OPS], held, s, a.seed)
    run_dir = Path(a.root) / f"beta{beta:g}"
    shutil.rmtree(run_dir, ignore_errors=True)  # every search starts afresh (deterministic)
    Trainer(obj, train, C.TrainConfig(max_steps=a.steps, batch_size=32, lr=3e-3,
                                      warmup_ratio=0.05, progress=False, log_every=1000,
                                      mixed_precision="no"), run_dir).fit()
    geno = obj.genotype()
    ops = [op for node in geno["nodes"] for _, op in node]
    rows.append({"beta": beta, "architecture": geno, "convs": sum("conv" in o for o in ops),
                 "edges": len(ops), "seconds": round(time.time() - t0, 1)})
    print(rows[-1], flush=True)
write_result(f"adabertsyn_bigram_{a.steps}steps", {"steps": a.steps, "seed": a.seed, "threads": a.threads,
                                   "task": "ordered bigram (A B vs B A), 512 train rows",
                                   "rows": rows}, cmd)
