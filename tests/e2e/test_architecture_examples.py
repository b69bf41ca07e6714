"""The code in ARCHITECTURE.md runs: the ten-line objective trains through run_training, and
the two-stage pipeline (fine-tune, then distil from stage 1's folder) runs and resumes."""

from __future__ import annotations

import re
import time
from pathlib import Path

import torch

from lmdistill import api
from lmdistill import config as C
from lmdistill.methods.finetune import model_inputs, supervised_loss
from lmdistill.methods.kd.run import distill
from lmdistill.models import hub
from lmdistill.train.loop import make_accelerator
from lmdistill.train.pipeline import Pipeline, Stage
from lmdistill.train.runner import load_encoded, load_task, run_training

DOC = Path(__file__).resolve().parents[2] / "ARCHITECTURE.md"
SMALL = {"data.task": "sst2", "data.limit": 96, "data.eval_limit": 32, "data.max_length": 32,
         "train.batch_size": 16, "train.epochs": 1, "train.lr": 1e-3, "train.progress": False,
         "train.num_threads": 1}


def doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_ten_line_objective_trains(tiny_bert, tmp_path):
    ns = {"torch": torch, "model_inputs": model_inputs, "supervised_loss": supervised_loss}
    exec(doc_blocks()[0], ns)  # noqa: S102 - our own documentation
    cfg = C.build(C.FinetuneConfig, overrides={**SMALL, "output_dir": str(tmp_path / "o"),
                                               "model.name": str(tiny_bert)})
    task = load_task(cfg.data)
    tok = hub.load_tokenizer(str(tiny_bert))
    train = load_encoded(task, "train", tok, 32, 96)
    dev = load_encoded(task, "dev", tok, 32, 32)
    model = hub.load_classifier(str(tiny_bert), 2)
    res = run_training(ns["ConfidencePenalty"](model), task, train, dev, cfg, False,
                       make_accelerator(), time.time())
    assert res["steps"] == 6 and (tmp_path / "o" / "model" / "config.json").exists()
    logged = (tmp_path / "o" / "metrics.jsonl").read_text()
    assert '"entropy"' in logged


def test_the_two_stage_pipeline_runs_and_resumes(tiny_bert, tmp_path):
    assert "Pipeline([Stage(\"teacher\", teacher_stage)" in doc_blocks()[1]

    def teacher_stage(ctx):
        cfg = C.build(C.FinetuneConfig, overrides={**SMALL, "output_dir": str(ctx.dir),
                                                   "model.name": str(tiny_bert)})
        return api.finetune(cfg, resume=ctx.resume)

    def student_stage(ctx):
        cfg = C.build(C.DistillConfig, overrides={
            **SMALL, "output_dir": str(ctx.dir), "student.num_layers": 1,
            "teacher.cache_dir": str(tmp_path / "cache"),
            "teacher.name": str(ctx.dir_of("teacher") / "model")})
        return distill(cfg, resume=ctx.resume)

    stages = [Stage("teacher", teacher_stage), Stage("student", student_stage)]
    res = Pipeline(stages, tmp_path / "p", progress=None).run(resume=True)
    assert res["student"]["teachers"] == [str(tmp_path / "p/stages/00-teacher/model")]
    again = Pipeline(stages, tmp_path / "p", progress=None).run(resume=True)
    assert again == res  # both stages done: nothing re-runs, the results are read back
