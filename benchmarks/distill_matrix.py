"""Students of one teacher on one task: no KD vs logit KD vs logit + intermediate KD, for
3- and 2-layer students, plus the shared-parameter and BiLSTM students.

Each row is a separate run written to ``results/distill_<task>_<row>.json`` (rows already
there are skipped, so the script resumes where it stopped); ``--only ROW`` re-runs one row.

    .venv/bin/python benchmarks/distill_matrix.py --task sst2 \
        --teacher runs/bench/teacher-sst2/model --epochs 1
    .venv/bin/python benchmarks/distill_matrix.py --task mrpc --epochs 3 --teacher-epochs 3
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
from lmdistill.methods.kd.run import distill, make_student

ap = argparse.ArgumentParser()
ap.add_argument("--task", default="sst2")
ap.add_argument("--teacher", default=None, help="fine-tuned teacher; trained if missing")
ap.add_argument("--teacher-epochs", type=float, default=3)
ap.add_argument("--epochs", type=float, default=1)
ap.add_argument("--limit", type=int, default=None)
ap.add_argument("--seed", type=int, default=42)
ap.add_argument("--threads", type=int, default=None)
ap.add_argument("--root", default="runs/bench")
ap.add_argument("--only", default=None)
ap.add_argument("--force", action="store_true")
ap.add_argument("--suffix", default="", help="appended to every row's name and run folder "
                "(e.g. --suffix=-all for a run on all training rows next to the subset rows)")
a = ap.parse_args()

root = Path(a.root) / f"{a.task}-matrix"
cmd = " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv])
train = {"train.epochs": a.epochs, "train.batch_size": 32, "train.seed": a.seed,
         "train.progress": False, "data.task": a.task, "data.limit": a.limit,
         "train.num_threads": a.threads}
train["train.eval_every"] = 400 if a.task == "sst2" else 100

teacher = a.teacher or str(Path(a.root) / f"teacher-{a.task}" / "model")
if not Path(teacher).exists():
    print(f"fine-tuning the teacher on {a.task} -> {teacher}")
    tres = api.finetune(C.build(C.FinetuneConfig, overrides={
        **train, "output_dir": str(Path(teacher).parent), "model.name": "minilm-l6",
        "train.epochs": a.teacher_epochs, "train.lr": 6e-5}))
    write_result(f"finetune_{a.task}_minilm-l6", {"model": "minilm-l6", "task": a.task,
                                                  "epochs": a.teacher_epochs, **tres}, cmd)
t_eval = api.evaluate(teacher, a.task, "dev", progress=False)

ROWS = {
    # name: (student config, kd overrides or None for "no KD", lr)
    "s3-nokd": ({"kind": "subset", "num_layers": 3}, None, 1e-4),
    "s3-logit": ({"kind": "subset", "num_layers": 3}, {"kd.alpha": 0.7}, 1e-4),
    "s3-logit-hidden": ({"kind": "subset", "num_layers": 3},
                        {"kd.alpha": 0.7, "kd.features": ["hidden"]}, 1e-4),
    "s2-nokd": ({"kind": "subset", "num_layers": 2}, None, 1e-4),
    "s2-logit": ({"kind": "subset", "num_layers": 2}, {"kd.alpha": 0.7}, 1e-4),
    "s2-logit-hidden": ({"kind": "subset", "num_layers": 2},
                        {"kd.alpha": 0.7, "kd.features": ["hidden"]}, 1e-4),
    "shared3x1-logit-hidden": ({"kind": "shared", "num_layers": 3, "num_unique": 1,
                                "layers": [2]},
                               {"kd.alpha": 0.7, "kd.features": ["hidden"]}, 1e-4),
    "bilstm-logit": ({"kind": "bilstm"}, {"kd.alpha": 0.7}, 1e-3),
}

for base, (scfg, kd, lr) in ROWS.items():
    if a.only and base != a.only:
        continue
    name = base + a.suffix
    out_json = RESULTS / f"distill_{a.task}_{name}.json"
    if out_json.exists() and not a.force:
        print(f"skip {name}: {out_json} exists")
        continue
    run_dir = root / name
    print(f"== {a.task} {name}")
    if kd is None:  # the same student, fine-tuned on gold labels only
        init = run_dir / "init"
        make_student(C.StudentConfig(**scfg), teacher, a.task, init)
        res = api.finetune(C.build(C.FinetuneConfig, overrides={
            **train, "output_dir": str(run_dir), "model.name": str(init), "train.lr": lr}))
    else:
        ov = {**train, **kd, "output_dir": str(run_dir), "teacher.name": teacher,
              "train.lr": lr, **{f"student.{k}": v for k, v in scfg.items()}}
        res = distill(C.build(C.DistillConfig, overrides=ov))
    ev = api.evaluate(str(run_dir / "model"), a.task, "dev", progress=False)
    from lmdistill.models import hub
    from lmdistill.models.students import count_params

    m = hub.load_classifier(str(run_dir / "model"))
    primary = next(k for k in ev if k in ("accuracy", "f1", "mcc", "pearson"))
    write_result(f"distill_{a.task}_{name}", {
        "task": a.task, "row": name, "student": scfg, "kd": kd, "lr": lr, "epochs": a.epochs,
        "teacher": teacher, "teacher_metrics": {k: v for k, v in t_eval.items()
                                                if isinstance(v, float)},
        "metrics": {k: v for k, v in ev.items() if isinstance(v, float)},
        "retention": ev[primary] / t_eval[primary], "primary": primary,
        "params": count_params(m), "params_no_emb": count_params(m, without_embeddings=True),
        "model_dir": str(run_dir / "model"), "train": res,
    }, f"{cmd} --only {base}" if not a.only else cmd)
print(json.dumps({"teacher": t_eval}, indent=2))
