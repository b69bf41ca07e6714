"""Multi-teacher masked-LM distillation study (issue 10): the same 2-layer student (teacher
layers [2, 5] of all-MiniLM-L6-v2, one fresh MLM head, saved once so every row starts from the
same weights), the same WikiText-2 blocks (64 tokens, first 4,000 blocks, static masks shared
by all rows), the same steps; held-out masked-token accuracy every 10 steps. Rows: no KD, each
single teacher, and the three teachers mixed uniformly / by confidence / entropy / gold-token
probability (and gold-sharp4: those weights to the 4th power). Teachers: benchmarks/mlm_teachers.py.

    .venv/bin/python benchmarks/mlm_multiteacher.py --seeds 1 2 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from common import write_result

from lmdistill import api
from lmdistill import config as C
from lmdistill.methods.kd.run import distill

ap = argparse.ArgumentParser()
ap.add_argument("--root", default="runs/bench/mlm")
ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
ap.add_argument("--steps", type=int, default=100)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--only", default=None)
a = ap.parse_args()
root = Path(a.root)
T = {k: str(root / f"teacher-{k}" / "model") for k in ("minilm-head", "sre-head", "minilm-full")}
ROWS = {"nokd": None, **{f"single-{k}": [k] for k in T},
        **{s: list(T) for s in ("uniform", "confidence", "entropy", "gold", "gold-sharp4")}}
DATA = {"data.task": "mlm:wikitext2", "data.mlm_block_size": 64, "data.mlm_max_blocks": 4000,
        "data.mlm_static": True}


def student_init() -> str:
    d = root / "student-init"
    if not (d / "config.json").exists():
        import torch

        from lmdistill.methods.mlm.run import load_mlm_model
        from lmdistill.models import hub
        from lmdistill.models.students import layer_subset

        torch.manual_seed(0)
        s = layer_subset(load_mlm_model("minilm-l6"), [2, 5])
        hub.save_model(s, d, hub.load_tokenizer("minilm-l6"))
    return str(d)


init = student_init()
for name, teachers in ROWS.items():
    if a.only and name != a.only:
        continue
    for seed in a.seeds:
        out = root / "study" / f"{name}-s{seed}"
        common = {**DATA, "output_dir": str(out), "train.seed": seed,
                  "train.max_steps": a.steps, "train.eval_every": 10, "train.batch_size": 32,
                  "train.eval_batch_size": 64, "train.lr": 5e-4, "train.num_threads": a.threads,
                  "train.warmup_ratio": 0.05, "train.progress": False}
        if teachers is None:
            res = api.finetune(C.build(C.FinetuneConfig, overrides={
                **common, "model.name": init}), resume=True)
        else:
            res = distill(C.build(C.DistillConfig, overrides={
                **common, "teacher.name": T[teachers[0]], "teacher.names": [T[t] for t in
                                                                           teachers[1:]],
                "teacher.strategy": name.split("-")[0] if len(teachers) > 1 else "uniform",
                # gold-sharp4: gold-token weights raised to the 4th power before normalising,
                # close to "the best teacher per token" while keeping the others' signal
                "teacher.sharpness": 4.0 if name.endswith("-sharp4") else 1.0,
                "teacher.cache_dir": str(root / "teacher-cache"), "teacher.topk": 32,
                "student.kind": "pretrained", "student.base": init,
                "kd.alpha": 0.5, "kd.temperature": 1.0}), resume=True)
        curve = [(r["step"], r["mlm_accuracy"], r["mlm_loss"])
                 for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
                 if r["type"] == "eval"]
        cmd = " ".join(shlex.quote(x) for x in [".venv/bin/python", "benchmarks/mlm_multiteacher.py",
                                                "--only", name, "--seeds", str(seed),
                                                "--steps", str(a.steps)])
        final = curve[-1]
        write_result(f"mlmstudy_{name}_s{seed}", {
            "row": name, "seed": seed, "teachers": teachers, "steps": a.steps,
            "curve": curve, "final_accuracy": final[1], "final_loss": final[2],
            "best_accuracy": res["mlm_accuracy"], "train_examples_per_s":
            res["train_examples_per_s"]}, cmd)
