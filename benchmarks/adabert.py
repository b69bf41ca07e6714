"""AdaBERT (issue 11) on one task: search (probes of the fine-tuned MiniLM-L6 teacher, op
latencies measured here) → derive → retrain from scratch with probe KD; the ablations without
the KD term (γ = 0) and without the efficiency term (β = 0); and the task-adaptivity rows (the
architecture searched on another task, retrained here).

Each row writes ``results/adabert_<task>_<row>.json`` (rows already there are skipped):

    .venv/bin/python benchmarks/adabert.py --task sst2 --limit 20000            # row "search"
    .venv/bin/python benchmarks/adabert.py --task sst2 --limit 20000 --only nokd,noeff
    .venv/bin/python benchmarks/adabert.py --task mrpc --arch-from sst2          # row "arch-sst2"
    .venv/bin/python benchmarks/adabert.py --task sst2 --arch-of beta0.2         # row "beta0.2-retrain-all"

The teacher is ``runs/bench/teacher-<task>/model`` (fine-tuned like distill_matrix.py when
missing); students train on the same seeded train subset as the distill matrix, dev is full.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from common import RESULTS, write_result

from lmdistill import api
from lmdistill import config as C

ap = argparse.ArgumentParser()
ap.add_argument("--task", default="sst2")
ap.add_argument("--teacher", default=None)
ap.add_argument("--teacher-epochs", type=float, default=3)
ap.add_argument("--limit", type=int, default=None)
ap.add_argument("--search-epochs", type=float, default=1)
ap.add_argument("--retrain-epochs", type=float, default=3)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seed", type=int, default=42)
ap.add_argument("--root", default="runs/bench")
ap.add_argument("--only", default="search", help="comma list of rows: search, nokd, noeff, "
                                               "beta<β> (e.g. beta0.2: the search at that β)")
ap.add_argument("--arch-from", default=None, help="retrain the architecture searched on this "
                                                  "task (its adabert_<task>_search result)")
ap.add_argument("--arch-of", default=None, help="retrain the architecture found by this row of "
                                                "the same task (e.g. beta0.2) on --limit rows "
                                                "(all when unset): row <row>-retrain-<limit|all>")
a = ap.parse_args()
if a.arch_from and a.arch_of:
    ap.error("--arch-from and --arch-of exclude each other")
cmd = " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv])
ROWS = {"search": {}, "nokd": {"adabert.gamma": 0.0}, "noeff": {"adabert.beta": 0.0}}
rows = [r.strip() for r in a.only.split(",")]
for r in rows:
    if r.startswith("beta") and r[4:].replace(".", "", 1).isdigit():
        ROWS[r] = {"adabert.beta": float(r[4:])}
    elif r not in ROWS:
        ap.error(f"unknown row {r!r}: one of {', '.join(ROWS)} or beta<β>")
root = Path(a.root)
teacher = a.teacher or str(root / f"teacher-{a.task}" / "model")
if not Path(teacher).exists():
    print(f"fine-tuning the teacher on {a.task} -> {teacher}")
    tres = api.finetune(C.build(C.FinetuneConfig, overrides={
        "output_dir": str(Path(teacher).parent), "model.name": "minilm-l6", "data.task": a.task,
        "train.epochs": a.teacher_epochs, "train.lr": 6e-5, "train.batch_size": 32,
        "train.seed": a.seed, "train.progress": False, "train.num_threads": a.threads,
        "train.eval_every": 100}))
    write_result(f"finetune_{a.task}_minilm-l6", {"model": "minilm-l6", "task": a.task,
                                                  "epochs": a.teacher_epochs, **tres}, cmd)
t_eval = api.evaluate(teacher, a.task, "dev", progress=False)

if a.arch_from:
    src = json.loads((RESULTS / f"adabert_{a.arch_from}_search.json").read_text())
    rows = [f"arch-{a.arch_from}"]
    ROWS[rows[0]] = {"adabert.genotype": src["architecture"]}
if a.arch_of:
    src_path = RESULTS / f"adabert_{a.task}_{a.arch_of}.json"
    if not src_path.exists():
        ap.error(f"no {src_path.name}: run the row {a.arch_of!r} first")
    rows = [f"{a.arch_of}-retrain-{a.limit or 'all'}"]
    ROWS[rows[0]] = {"adabert.genotype": json.loads(src_path.read_text())["architecture"]}
for row in rows:
    name = f"adabert_{a.task}_{row}"
    if (RESULTS / f"{name}.json").exists():
        print(f"{name}: done")
        continue
    out = root / "adabert" / a.task / row
    over = {"output_dir": str(out), "data.task": a.task, "data.limit": a.limit,
            "teacher.name": teacher, "train.epochs": a.search_epochs,
            "retrain.epochs": a.retrain_epochs, "train.seed": a.seed, "retrain.seed": a.seed,
            "train.num_threads": a.threads, "retrain.num_threads": a.threads,
            "train.progress": False, "retrain.progress": False, "train.log_every": 5,
            "train.eval_every": 200, "retrain.eval_every": 400 if a.task == "sst2" else 100,
            **ROWS[row]}
    res = api.search(C.build(C.SearchConfig, overrides=over), resume=True)
    primary = "accuracy" if a.task != "mrpc" else "f1"
    write_result(name, {
        "task": a.task, "row": row, "teacher": teacher, "teacher_metrics": t_eval,
        "primary": primary, "metric": res[primary],
        "retention": res[primary] / t_eval[primary], "architecture": res["architecture"],
        "params": res["params"], "params_no_emb": res["params_no_emb"],
        "overrides": {k: v for k, v in ROWS[row].items() if k != "adabert.genotype"},
        "arch_from": a.arch_from, "arch_of": a.arch_of, "model_dir": str(out / "model"),
        "costs": json.loads((out / "costs.json").read_text()) if (out / "costs.json").exists()
        else None, "result": res}, cmd)
