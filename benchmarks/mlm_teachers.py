"""Three different MLM teachers of one vocabulary (issue 10), each trained here on WikiText-2
(blocks of 64 tokens, the corpus's content-hash held-out split) and measured on the held-out
blocks (masked-token accuracy and loss, fixed masks):

- ``minilm-head``:      all-MiniLM-L6-v2, MLM head trained on a frozen encoder;
- ``sre-head``:         the SRE-fine-tuned MiniLM-L6, MLM head on a frozen encoder;
- ``minilm-full``:      all-MiniLM-L6-v2, encoder unfrozen (MLM training of the whole model).

    .venv/bin/python benchmarks/mlm_teachers.py --threads 2
"""

from __future__ import annotations

import argparse
import shlex
import sys

from common import write_result

from lmdistill import api
from lmdistill import config as C

ap = argparse.ArgumentParser()
ap.add_argument("--root", default="runs/bench/mlm")
ap.add_argument("--corpus", default="mlm:wikitext2")
ap.add_argument("--block", type=int, default=64)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--only", default=None)
a = ap.parse_args()
# name: (base, encoder frozen, epochs, lr, max steps)
TEACHERS = {
    "minilm-head": ("minilm-l6", True, 2, 1e-3, None),
    "sre-head": ("sre-minilm-l6", True, 1, 1e-3, None),
    "minilm-full": ("minilm-l6", False, 1, 1e-4, 200),
}
for name, (model, frozen, epochs, lr, max_steps) in TEACHERS.items():
    if a.only and name != a.only:
        continue
    out = f"{a.root}/teacher-{name}"
    res = api.finetune(C.build(C.FinetuneConfig, overrides={
        "output_dir": out, "model.name": model, "data.task": a.corpus,
        "data.mlm_block_size": a.block, "model.freeze_encoder": frozen,
        "train.epochs": epochs, "train.max_steps": max_steps, "train.lr": lr,
        "train.batch_size": 32,
        "train.eval_batch_size": 64, "train.eval_every": 100, "train.num_threads": a.threads,
        "train.warmup_ratio": 0.05}), resume=True)
    cmd = " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv] +
                   ([] if a.only else ["--only", name]))
    write_result(f"mlm_teacher_{name}", {"row": name, "base": model,
                                         "freeze_encoder": frozen,
                                         "epochs": round(res["examples_seen"] / res["train_examples"], 2),
                                         "lr": lr, "block": a.block, **res}, cmd)
