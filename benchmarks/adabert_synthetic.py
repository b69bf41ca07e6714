"""Issue 30's synthetic check of the AdaBERT search: a task only an order-aware op can solve.

Each row is a sequence of random filler tokens with the two tokens A, B adjacent somewhere:
label 1 for "A B", 0 for "B A". The head pools over positions (mean and max), so identity and
the (symmetric) pools see a bag of words and cannot tell the labels apart; a convolution can.
The search (probes off: γ = 0, costs = parameter shares, every other setting at its default;
``lmdistill.methods.adabert.synthetic``) runs at β in --betas; the derived architecture of
each, its cost (the search's L_E) and its held-out accuracy with the supernet's weights are
written to ``results/adabertsyn_bigram_<steps>steps.json``.

    .venv/bin/python benchmarks/adabert_synthetic.py --betas 0 0.5 1 2 4 100
    .venv/bin/python benchmarks/adabert_synthetic.py --steps 300 -o warmup_forward=soft
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch

from common import write_result
from lmdistill import config as C
from lmdistill.methods.adabert.synthetic import STEPS, search_bigram

ap = argparse.ArgumentParser()
ap.add_argument("--betas", nargs="+", type=float, default=[0.0, 4.0, 100.0])
ap.add_argument("--steps", type=int, default=STEPS)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("-o", "--set", action="append", default=[], metavar="FIELD=VALUE",
                help="an AdaBertSettings field (e.g. warmup_forward=soft); the name of the "
                     "result gets the settings")
ap.add_argument("--root", default="runs/bench/adabert-synthetic")
a = ap.parse_args()
torch.set_num_threads(a.threads)
cmd = " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv])
settings = dict(kv.split("=", 1) for kv in a.set)
s = C.AdaBertSettings(**settings)  # refused here if a field or value is wrong

rows = []
for beta in a.betas:
    rows.append(search_bigram(beta, Path(a.root) / f"{a.steps}-beta{beta:g}", a.steps, a.seed,
                              a.threads, **settings))
    print(rows[-1], flush=True)
name = f"adabertsyn_bigram_{a.steps}steps" + "".join(f"_{k}-{v}" for k, v in settings.items())
write_result(name, {"steps": a.steps, "seed": a.seed, "threads": a.threads,
                    "task": "ordered bigram (A B vs B A), 512 train rows, 256 held-out",
                    "settings": {k: getattr(s, k) for k in ("arch_start", "warmup_forward",
                                                            "arch_gradient", "arch_samples",
                                                            "arch_lr", "gumbel_start",
                                                            "gumbel_end")},
                    "rows": rows}, cmd)
