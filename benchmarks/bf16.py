"""fp32 vs bf16 training on a CPU (issue 26, "bf16 on the CPUs that have it").

    .venv/bin/python benchmarks/bf16.py [--threads 1] [--seeds 42,43] [--limit 4000]
                                        [--epochs 2] [--only speed|accuracy]

Writes two results (both with the command, the machine with its CPU model and ISA, threads and
torch version):

- ``results/bf16_speed_minilm-l6.json``: train examples/s of ``minilm-l6`` (batch 32 x 128
  tokens, rows of SST-2 text run together to 128 tokens), fp32 vs bf16,
  (a) through lmdistill's own loop (``Trainer.fit`` of a few steps, fp32 and bf16 fits
  alternating, the first step of each fit not timed) and (b) beside it a plain HF loop
  (AutoModelForSequenceClassification, AdamW, ``torch.autocast(bf16)`` or not; fp32 and bf16
  steps alternating), medians of per-step times; plus what ``train.mixed_precision=auto``
  decided on the same model and shape (its probe's timings).
- ``results/bf16_accuracy_sst2.json``: SST-2 dev accuracy (all 872 rows) of (a) a teacher
  fine-tuned from minilm-l6 and (b) a 3-layer student distilled from it, each trained in fp32
  and in bf16 (``train.mixed_precision=no`` / ``bf16``; the bf16 student from the bf16
  teacher), per seed; evaluation runs in fp32. Training times there come from separate
  runs, one after the other: read the speed file for ratios.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import write_result

from lmdistill import api
from lmdistill import config as C

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="minilm-l6")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seeds", default="42,43")
ap.add_argument("--limit", type=int, default=4000, help="SST-2 train rows (seeded subset)")
ap.add_argument("--epochs", type=float, default=2.0)
ap.add_argument("--rounds", type=int, default=3, help="speed: fp32/bf16 fit pairs (our loop)")
ap.add_argument("--fit-steps", type=int, default=4, help="speed: steps per fit (first untimed)")
ap.add_argument("--hf-pairs", type=int, default=8, help="speed: fp32/bf16 step pairs (HF loop)")
ap.add_argument("--only", choices=["speed", "accuracy"], default=None)
ap.add_argument("--out", default="runs/bench/bf16")
a = ap.parse_args()

torch.set_num_threads(a.threads)
CMD = " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv])
OUT = Path(a.out)
BATCH, LENGTH = 32, 128
NAME = {"no": "fp32", "bf16": "bf16"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ speed
def long_rows(tokenizer, n: int):
    """``n`` rows of SST-2 train sentences run together until each is 128 tokens."""
    from lmdistill.data.collate import encode
    from lmdistill.data.task import Example
    from lmdistill.data.tasks import get_task

    sents = [e.text_a for e in get_task("sst2").load("train", limit=n * 40, seed=0)]
    rows, cur, k = [], [], 0
    while len(rows) < n:
        cur.append(sents[k % len(sents)])
        k += 1
        if len(tokenizer(" ".join(cur))["input_ids"]) >= LENGTH:
            rows.append(Example(" ".join(cur), None, len(rows) % 2, len(rows)))
            cur = []
    enc = encode(rows, tokenizer, LENGTH)
    assert all(len(x) == LENGTH for x in enc.input_ids)
    return enc


def _step_timer():
    from lmdistill.train.callbacks import Callback

    class StepTimes(Callback):
        """Seconds of every training step (the loop's own step timing)."""

        def __init__(self):
            self.times, self.last = [], 0.0

        def on_train_begin(self, trainer):
            self.last = trainer.state.train_seconds

        def on_step_end(self, trainer, logs):
            self.times.append(trainer.state.train_seconds - self.last)
            self.last = trainer.state.train_seconds

    return StepTimes()


def our_loop_fit(model_state, tokenizer, enc, mp: str, steps: int, work: Path):
    """One ``Trainer.fit`` of ``steps`` steps of a fresh copy of the model."""
    from lmdistill.methods.finetune import SupervisedObjective
    from lmdistill.models import hub
    from lmdistill.train.loop import Trainer, make_accelerator

    model = hub.load_classifier(a.model, 2)
    model.load_state_dict(model_state)
    obj = SupervisedObjective(model, False, tokenizer)
    cfg = C.TrainConfig(max_steps=steps, batch_size=BATCH, num_threads=a.threads,
                        mixed_precision=mp, progress=False, lr=6e-5, log_every=1,
                        keep_checkpoints=1)
    out = Path(tempfile.mkdtemp(dir=work))
    timer = _step_timer()
    tr = Trainer(obj, enc, cfg, out, callbacks=[timer], accelerator=make_accelerator(mp))
    fit = tr.fit()
    shutil.rmtree(out, ignore_errors=True)
    return timer.times, fit


def speed() -> dict:
    from transformers import AutoModelForSequenceClassification

    from lmdistill.models import hub

    work = OUT / "speed"
    work.mkdir(parents=True, exist_ok=True)
    tok = hub.load_tokenizer(a.model)
    enc = long_rows(tok, BATCH * a.fit_steps * 2)
    torch.manual_seed(0)
    state = {k: v.clone() for k, v in hub.load_classifier(a.model, 2).state_dict().items()}

    # (a) our loop: fp32 and bf16 fits alternating (order swapped every round)
    ours = {"no": [], "bf16": []}
    fits = []
    for r in range(a.rounds):
        for mp in (("no", "bf16") if r % 2 == 0 else ("bf16", "no")):
            times, fit = our_loop_fit(state, tok, enc, mp, a.fit_steps, work)
            assert fit["mixed_precision"] == mp
            ours[mp] += times[1:]
            fits.append({"round": r, "mixed_precision": mp, "step_s": [round(t, 3) for t in
                                                                       times]})
            log(f"our loop round {r} {NAME[mp]}: steps {[round(t, 2) for t in times]}")
    # what auto decides for this model and shape (its probe, through the real start-up)
    times, fit = our_loop_fit(state, tok, enc, "auto", 2, work)
    auto = {"mixed_precision": fit["mixed_precision"], "precision": fit["precision"],
            "step_s": [round(t, 3) for t in times]}
    log(f"auto: {fit['mixed_precision']} {fit['precision']}")

    # (b) a plain HF loop of the same shape: two copies, fp32 and bf16 steps alternating
    path = hub.resolve(a.model)
    models, opts = {}, {}
    for mp in ("no", "bf16"):
        torch.manual_seed(0)
        m = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
        m.load_state_dict(state)
        m.train()
        models[mp], opts[mp] = m, torch.optim.AdamW(m.parameters(), lr=6e-5)
    idx = list(range(BATCH))
    ids = torch.tensor([enc.input_ids[i] for i in idx])
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
             "labels": torch.tensor([enc.labels[i] for i in idx])}
    if enc.token_type_ids:
        batch["token_type_ids"] = torch.zeros_like(ids)

    def hf_step(mp: str) -> float:
        m, opt = models[mp], opts[mp]
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mp == "bf16"):
            loss = m(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    hf = {"no": [], "bf16": []}
    hf_step("no"), hf_step("bf16")  # warm-up
    for p in range(a.hf_pairs):
        for mp in (("no", "bf16") if p % 2 == 0 else ("bf16", "no")):
            hf[mp].append(hf_step(mp))
    log(f"HF loop: fp32 {[round(t, 2) for t in hf['no']]} bf16 {[round(t, 2) for t in hf['bf16']]}")

    def summary(times: dict) -> dict:
        med = {mp: statistics.median(v) for mp, v in times.items()}
        return {"fp32_step_s": [round(t, 3) for t in times["no"]],
                "bf16_step_s": [round(t, 3) for t in times["bf16"]],
                "fp32_median_s": round(med["no"], 3), "bf16_median_s": round(med["bf16"], 3),
                "fp32_ex_per_s": round(BATCH / med["no"], 2),
                "bf16_ex_per_s": round(BATCH / med["bf16"], 2),
                "speedup": round(med["no"] / med["bf16"], 3)}

    return {"model": a.model, "batch": BATCH, "length": LENGTH, "threads": a.threads,
            "our_loop": {**summary(ours), "fits": fits, "steps_per_fit": a.fit_steps,
                         "note": "Trainer.fit per precision, alternating; first step of "
                                 "each fit not timed"},
            "hf_loop": {**summary(hf), "note": "AutoModelForSequenceClassification + AdamW "
                                               "+ clip, torch.autocast(cpu, bf16) or fp32, "
                                               "steps alternating after one warm-up each"},
            "auto": auto}


# ------------------------------------------------------------------ accuracy
def accuracy() -> dict:
    import os

    seeds = [int(s) for s in a.seeds.split(",")]
    os.environ["LMDISTILL_CACHE"] = str(OUT / "cache")  # teacher caches of this benchmark
    common = {"data.task": "sst2", "data.limit": a.limit, "train.epochs": a.epochs,
              "train.batch_size": 32, "train.eval_every": 63, "train.progress": False,
              "train.num_threads": a.threads, "train.keep_checkpoints": 1}
    runs = []
    for i, seed in enumerate(seeds):
        for mp in (("no", "bf16") if i % 2 == 0 else ("bf16", "no")):
            d = OUT / f"s{seed}-{NAME[mp]}"
            shutil.rmtree(d, ignore_errors=True)
            t0 = time.time()
            teacher = api.finetune(C.build(C.FinetuneConfig, overrides={
                **common, "output_dir": str(d / "teacher"), "model.name": a.model,
                "train.lr": 6e-5, "train.seed": seed, "train.mixed_precision": mp}))
            t1 = time.time()
            student = api.distill(C.build(C.DistillConfig, overrides={
                **common, "output_dir": str(d / "student"), "teacher.name":
                str(d / "teacher" / "model"), "student.kind": "subset", "student.num_layers": 3,
                "kd.alpha": 0.7, "train.lr": 1e-4, "train.seed": seed,
                "train.mixed_precision": mp}))
            t2 = time.time()
            keep = ("accuracy", "best_step", "steps", "train_seconds", "train_examples_per_s",
                    "mixed_precision", "wall_seconds")
            runs.append({"seed": seed, "precision": NAME[mp],
                         "teacher": {k: teacher.get(k) for k in keep},
                         "student": {k: student.get(k) for k in keep},
                         "wall_s": [round(t1 - t0, 1), round(t2 - t1, 1)]})
            log(f"seed {seed} {NAME[mp]}: teacher {teacher['accuracy']:.4f} "
                f"student {student['accuracy']:.4f} ({t2 - t0:.0f} s)")
            write_result("bf16_accuracy_sst2", partial(runs, seeds), CMD)
    return partial(runs, seeds)


def partial(runs: list, seeds: list) -> dict:
    out = {"task": "sst2", "model": a.model, "limit": a.limit, "epochs": a.epochs,
           "eval_rows": 872, "threads": a.threads, "seeds": seeds,
           "student_recipe": "subset, 3 layers from the teacher's, kd.alpha 0.7, lr 1e-4",
           "teacher_lr": 6e-5, "eval_precision": "fp32 (the loop's prediction is not autocast)",
           "runs": runs}
    for role in ("teacher", "student"):
        acc = {(r["seed"], r["precision"]): r[role]["accuracy"] for r in runs}
        both = [s for s in seeds if (s, "fp32") in acc and (s, "bf16") in acc]
        if both:
            m = {p: statistics.mean(acc[(s, p)] for s in both) for p in ("fp32", "bf16")}
            out[role] = {"fp32_mean": round(m["fp32"], 4), "bf16_mean": round(m["bf16"], 4),
                         "bf16_minus_fp32_points": round(100 * (m["bf16"] - m["fp32"]), 2),
                         "per_seed_points": [round(100 * (acc[(s, "bf16")] - acc[(s, "fp32")]),
                                                   2) for s in both],
                         "seeds_paired": len(both)}
    return out


t_start = time.time()
if a.only in (None, "speed"):
    res = speed()
    res["wall_s"] = round(time.time() - t_start, 1)
    write_result(f"bf16_speed_{Path(a.model).name}", res, CMD)
if a.only in (None, "accuracy"):
    t = time.time()
    res = accuracy()
    res["wall_s"] = round(time.time() - t, 1)
    write_result("bf16_accuracy_sst2", res, CMD)
log(f"done in {time.time() - t_start:.0f} s")
