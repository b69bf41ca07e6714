"""L2A (issue 14): learning to augment in data-scarce target domains, next to its baselines at
matched numbers of augmented rows, all through ``lmdistill l2a`` (one pipeline per row).

Per (setting, target fraction, seed):

1. ``l2a``: the teacher (all-MiniLM-L6-v2 fine-tuned on source + available target rows), the
   round-0 student, 3 rounds of generator + selector;
2. with that teacher (same rows, same round-0 student, the same rounds and optimizer steps):
   ``none`` (no augmentation), ``eda``, ``cbert`` (unconditional: the generator's MLM),
   ``random`` (L2A's candidate pools, kept at random), ``source`` (teacher-labelled source
   rows), all with as many rows as L2A kept; ``generated-all`` (every candidate of the pools);
   ``l2a-nosource`` (chains from target rows only) and ``l2a-notarget`` (source rows only);
3. ``teacher``: the teacher on the target's eval split.

With ``--generator-steps N`` (issue 29) the ``l2a`` row first trains the generator's masked LM
(``--mlm``, whole model, from minilm-l6 by default) on the source + available target texts;
every row of that seed uses it. Rows are then named ``..._g<N>_...``.

    .venv/bin/python benchmarks/l2a.py --setting rt --fraction 0.01 --seeds 1 2 3

A unit (≤ 1 hour here) is one setting, fraction and seed with one of the two row groups:
``--rows l2a,none,random,generated-all,teacher`` and
``--rows eda,cbert,source,l2a-nosource,l2a-notarget``. The second retrains the ``l2a`` row's
teacher and generator (deterministic from the seed) when its run folder is not on disk.

Settings: ``rt`` (SST-2 -> RT), ``kitchen`` (Amazon books -> kitchen). Writes
``results/l2a_<setting>_f<fraction>_<row>_s<seed>.json``; rows already there are skipped.
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

SETTINGS = {"rt": ("rt", "sst2", 8000), "kitchen": ("amazon-kitchen", "amazon-books", None)}

ap = argparse.ArgumentParser()
ap.add_argument("--setting", choices=sorted(SETTINGS), default="rt")
ap.add_argument("--fraction", type=float, default=0.01)
ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
ap.add_argument("--mlm", default=None,
                help="masked LM of the generator and of CBERT (default: minilm-l6 with "
                     "--generator-steps, else runs/bench/mlm/teacher-minilm-full/model from "
                     "benchmarks/mlm_teachers.py)")
ap.add_argument("--generator-steps", type=int, default=0,
                help="train the generator's MLM (--mlm) on source + target text first")
ap.add_argument("--rows", default="l2a,none,eda,cbert,l2a-nosource,l2a-notarget,teacher")
ap.add_argument("--candidates", type=int, default=None,
                help="generated candidates per round (default: the L2AConfig one, 64); EDA and "
                     "CBERT then match L2A's kept rows as always. Rows are named ..._c<N>")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--root", default="runs/bench/l2a")
a = ap.parse_args()
if a.mlm is None:
    a.mlm = "minilm-l6" if a.generator_steps else "runs/bench/mlm/teacher-minilm-full/model"
cmd = " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv])
target, source, source_limit = SETTINGS[a.setting]
want = a.rows.split(",")


# in the row name and the run folder
tag = (f"-c{a.candidates}" if a.candidates else "") + (
    f"_g{a.generator_steps}" if a.generator_steps else "")


def run(row: str, seed: int, **over) -> dict:
    name = f"l2a_{a.setting}_f{a.fraction:g}{tag}_{row}_s{seed}"
    path = RESULTS / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    res = pipeline(row, seed, **over)
    write_result(name, {"setting": a.setting, "fraction": a.fraction, "row": row, "seed": seed,
                        "candidates": a.candidates or 64, "generator_steps": a.generator_steps,
                        **res}, cmd)
    return res


def pipeline(row: str, seed: int, **over) -> dict:
    cfg = C.build(C.L2AConfig, overrides={
        "output_dir": f"{a.root}/{a.setting}-f{a.fraction:g}{tag}-s{seed}/{row}",
        "data.task": target, "data.max_length": 128, "l2a.source_task": source,
        "l2a.source_limit": source_limit, "l2a.target_fraction": a.fraction,
        "l2a.mlm": a.mlm, "train.seed": seed, "teacher_train.seed": seed,
        "train.num_threads": a.threads, "teacher_train.num_threads": a.threads,
        "train.progress": False, "teacher_train.progress": False,
        "l2a.generator_steps": a.generator_steps if row == "l2a" else 0,
        **({"l2a.candidates": a.candidates} if a.candidates else {}), **over})
    return api.l2a(cfg, resume=True)


for seed in a.seeds:
    ref = run("l2a", seed)
    stages = Path(f"{a.root}/{a.setting}-f{a.fraction:g}{tag}-s{seed}/l2a/stages")
    teacher, generator = str(stages / "00-teacher" / "model"), str(stages / "01-generator" / "model")
    if not Path(teacher).exists() and set(want) - {"l2a"}:  # a later unit on a fresh machine
        pipeline("l2a", seed)  # the l2a row's pipeline again (deterministic from the seed)
    n = max(1, ref["kept_total"])  # matched numbers of augmented rows
    rows = {"none": {"l2a.augmenter": "none"},
            "eda": {"l2a.augmenter": "eda", "l2a.augment_samples": n},
            "cbert": {"l2a.augmenter": "cbert", "l2a.augment_samples": n},
            "random": {"l2a.augmenter": "random", "l2a.augment_samples": n},
            "generated-all": {"l2a.augmenter": "generated-all"},
            "source": {"l2a.augmenter": "source", "l2a.augment_samples": n},
            "l2a-nosource": {"l2a.source_mix": 0.0},
            "l2a-notarget": {"l2a.source_mix": 1.0}}
    for row, over in rows.items():
        if row in want:
            run(row, seed, **{"teacher.name": teacher, **over,
                              **({"l2a.mlm": generator} if a.generator_steps else {})})
    name = f"l2a_{a.setting}_f{a.fraction:g}{tag}_teacher_s{seed}"
    if "teacher" in want and not (RESULTS / f"{name}.json").exists():
        res = api.evaluate(teacher, target, "dev", progress=False)
        write_result(name, {"setting": a.setting, "fraction": a.fraction, "row": "teacher",
                            "seed": seed, "candidates": a.candidates or 64, "final": res}, cmd)
