"""Lexical KD into the 2-layer student (issue 28, part 2): the student (layers [2, 5] of
all-MiniLM-L6-v2, 15.6M parameters, as every student here) trained on SemCor's sentences, then
used as an NN sense encoder exactly as the NN teacher is (its own sense vectors from SemCor,
every choice tuned on the teacher's held-out SemCor documents, official F1 on SE2, SE3, SE07,
SE13, SE15 and ALL with MFS and the ≤4 / >4 candidates split). One unit per row, each writing
``results/wsd_student_<row>.json`` as it finishes (``lmdistill lexical-kd``'s summary):

- ``direct`` (no KD): the same student trained on the senses directly, with no teacher: a
  softmax over each token's candidate senses against a sense table trained with it (started
  from the means of the student's own initial vectors);
- ``kd``: token-level hidden-state KD: the student's vector of every tagged token learns the NN
  teacher's target vector (the mean of its tuned hidden states [-4, -1]), 1 − cos;
- ``kd-sense``: ``kd`` plus the sense term against the teacher's (fixed) sense vectors.

    .venv/bin/python benchmarks/wsd_student.py --unit teacher --threads 1    # if missing
    .venv/bin/python benchmarks/wsd_student.py --unit direct --threads 1
    .venv/bin/python benchmarks/wsd_student.py --unit kd --threads 1
    .venv/bin/python benchmarks/wsd_student.py --unit kd-sense --threads 1

Every student unit reads the NN teacher's folder ``--root``/lmms-minilm-l6-h0.05-s0, the one
``benchmarks/wsd.py --unit lmms-teacher --root runs/bench/wsd-r2`` builds and tunes (its
``wsd_lmms_teacher.json``); ``--unit teacher`` builds and tunes it alone (the same function,
encoder, hold-out and seed; 10.8 + 9.9 min there, no result file), and a student unit refuses
to start without it. ``kd`` and ``kd-sense`` share the cached teacher targets (the second one
skips that pass).

Plan (the arithmetic behind the defaults). Measured on this machine (Intel Xeon, AVX-512 and
AMX, 2 cores; ``lmdistill.hardware``'s line is in every result) at 1 thread while two other
benchmark jobs held the CPU (so on the slow side), through ``lmdistill lexical-kd`` on SemCor's
first 40 documents (3,497 training sentences, 30.0 wordpieces each; the whole of SemCor's
34,630 training sentences, 222,803 tagged tokens, average 26.8):

- training: 45 sentences/s (``direct``, fp32) and 60 (KD, fp32); 65-99 where the loop's
  probe picked bf16. At 45/s an epoch of 34,630 sentences is 12.8 min;
- teacher targets (KD units; one 6-layer pass at 128 wordpieces): 42 s for the slice, so
  6.9 min for all; the whole-SemCor teacher build at 512 wordpieces took 10.8 min
  (``wsd_lmms_teacher.json``): 11 min is the bound used here;
- the learned table's start (``direct``; one 2-layer pass): 21 s for the slice, 3.4 min for
  all;
- the NN procedure over the trained student (sense vectors, tuning, the six sets): 3.9 min
  for the 2-layer subset's unit (``wsd_lmms_subset-2.json``); reading SemCor and encoding its
  targets: 20 s.

So at ``--epochs 3`` (the default): ``kd`` 11 + 3 × 12.8 + 3.9 + 0.5 ≈ 54 min, ``kd-sense``
≈ 54 min (≈ 43 once
``kd``'s targets are cached), ``direct`` 3.4 + 38.4 + 3.9 + 0.5 ≈ 46 min (its sense table of
34,454 senses has its own optimizer: a few ms a step more than the slice's): each under 75.

Smoke (a tiny teacher folder and slice, results elsewhere): ``--unit teacher --documents 40``,
then a unit with ``--documents 40 --sets SE07 --limit 200 --epochs 1 --results
/tmp/wsd-student-smoke``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("--unit", required=True, choices=("teacher", "direct", "kd", "kd-sense"))
ap.add_argument("--epochs", type=float, default=3.0)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--root", default="runs/bench/wsd-r2")
ap.add_argument("--encoder", default="minilm-l6")
ap.add_argument("--holdout", type=float, default=0.05)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--documents", type=int, default=None, help="smoke: SemCor's first N "
                "documents only (their own teacher folder)")
ap.add_argument("--limit", type=int, default=None, help="a seeded subset of the training "
                "sentences")
ap.add_argument("--sets", default="SE2,SE3,SE07,SE13,SE15,ALL")
ap.add_argument("--results", default=None, help="write the JSON here instead of results/ "
                "(smoke runs)")
a = ap.parse_args()
if a.results:
    os.environ["LMDISTILL_BENCH_RESULTS"] = a.results
cmd = " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv])

from common import write_result  # noqa: E402 - after LMDISTILL_BENCH_RESULTS is set

from lmdistill import api  # noqa: E402
from lmdistill import config as C  # noqa: E402
from lmdistill.methods.lexical import lmms, lmms_tune  # noqa: E402

ROWS = {"direct": {"lexical.kd_weight": 0, "lexical.sense_weight": 1,
                   "lexical.sense_table": "learned"},
        "kd": {"lexical.kd_weight": 1, "lexical.sense_weight": 0},
        "kd-sense": {"lexical.kd_weight": 1, "lexical.sense_weight": 1,
                     "lexical.sense_table": "teacher"}}


def teacher_folder(corpus: str, build: bool) -> Path:
    """The NN teacher's folder (``benchmarks/wsd.py --unit lmms-teacher``'s name for all of
    SemCor), built and tuned when ``build`` (else it must be there, tuned)."""
    tag = "" if corpus == "semcor" else f"-{corpus.replace(':', '')}"
    out = Path(a.root) / f"lmms-{a.encoder.replace('/', '_')}{tag}-h{a.holdout}-s{a.seed}"
    if build:
        lmms.build_sense_vectors(out, a.encoder, corpus, holdout=a.holdout, seed=a.seed,
                                 progress=True)
        if not lmms._index(out).get("choice"):
            lmms_tune.tune(out, progress=True)
    elif not (out / "index.json").exists() or not lmms._index(out).get("choice"):
        sys.exit(f"no tuned NN teacher in {out}: run this script with --unit teacher (and the "
                 "same --root, --documents) first")
    return out


def main() -> None:
    import torch

    torch.set_num_threads(a.threads)
    t0 = time.time()
    corpus = f"semcor:{a.documents}" if a.documents else "semcor"
    teacher = teacher_folder(corpus, build=a.unit == "teacher")
    if a.unit == "teacher":
        print(f"{teacher}: built and tuned, {(time.time() - t0) / 60:.1f} min")
        return
    tag = "" if corpus == "semcor" else f"-{corpus.replace(':', '')}"
    out = Path(a.root) / (f"student-{a.unit}{tag}-e{a.epochs:g}"
                          + (f"-n{a.limit}" if a.limit else ""))
    cfg = C.build(C.LexicalKDConfig, overrides={
        **ROWS[a.unit], "lexical.teacher_vectors": str(teacher), "data.task": corpus,
        "data.limit": a.limit, "output_dir": str(out), "train.epochs": a.epochs,
        "train.num_threads": a.threads, "train.progress": False,
        "lexical.eval_sets": [s.strip() for s in a.sets.split(",") if s.strip()]})
    res = api.lexical_kd(cfg, resume=True)  # a killed unit continues where it stopped
    res["pipeline_seconds"] = res.pop("wall_seconds")
    write_result(f"wsd_student_{a.unit}", {
        "row": a.unit, "unit": a.unit, "threads": a.threads, "epochs": a.epochs,
        "corpus": corpus, "limit": a.limit, "run": str(out),
        **res, "wall_seconds": round(time.time() - t0, 1)}, cmd)


if __name__ == "__main__":
    main()
