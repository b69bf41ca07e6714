"""Pipelines: stages (or rounds) of training, each its own objective and data over the one loop.

A method that trains in several phases (Meta-KD: meta-teacher, then distillation stage 1 and
stage 2; L2A: rounds of augment → select → distil) is a list of :class:`Stage`. Each stage's
``run(ctx)`` does its work in its own folder ``ctx.dir`` (usually one
:func:`lmdistill.train.runner.run_training` or :class:`~lmdistill.train.loop.Trainer` with
``output_dir=ctx.dir`` and ``resume=ctx.resume``) and returns a JSON-able result. Later stages
read earlier ones' results (``ctx.results``) and folders (``ctx.dir_of(name)``).

Resumable after a kill at any point: a finished stage leaves ``stage.json`` (written
atomically, last) and is never run again; the stage that was running resumes from its own last
checkpoint (``ctx.resume`` is True when its folder already exists); the stages after it run as
usual. Stage names must be unique; their order is part of the folder names. A finished stage's
``checkpoints/`` (weights + optimizer states, only ever read to resume that stage) are removed
once its ``stage.json`` is written, unless ``keep_checkpoints=True``: the model and results
stay, and an L2A run of 4 rounds × 6 rows no longer leaves gigabytes of optimizer states.

    stages = [Stage("teacher", train_teacher), Stage("distill", distil_from_teacher)]
    results = Pipeline(stages, "runs/metakd").run(resume=True)
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import ConfigError

DONE = "stage.json"


@dataclass
class StageContext:
    name: str
    index: int
    dir: Path
    resume: bool
    results: dict[str, dict]          # finished stages' results, by name
    dirs: dict[str, Path] = field(default_factory=dict)

    def dir_of(self, name: str) -> Path:
        if name not in self.dirs:
            raise ConfigError(f"stage '{self.name}' asked for unknown stage '{name}'")
        return self.dirs[name]


@dataclass
class Stage:
    name: str
    run: Callable[[StageContext], dict]


class Pipeline:
    def __init__(self, stages: list[Stage], output_dir: str | Path, progress=print,
                 keep_checkpoints: bool = False):
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ConfigError(f"stage names must be unique: {names}")
        if not stages:
            raise ConfigError("a pipeline needs at least one stage")
        self.stages, self.output_dir, self.say = stages, Path(output_dir), progress or (
            lambda m: None)
        self.keep_checkpoints = keep_checkpoints
        self.dirs = {s.name: self.output_dir / "stages" / f"{i:02d}-{s.name}"
                     for i, s in enumerate(stages)}

    def status(self) -> dict[str, str]:
        """name -> ``done`` | ``started`` | ``pending``."""
        out = {}
        for s in self.stages:
            d = self.dirs[s.name]
            out[s.name] = "done" if (d / DONE).exists() else "started" if d.exists() else \
                "pending"
        return out

    def run(self, resume: bool = False) -> dict[str, dict]:
        st = self.status()
        if not resume and any(v != "pending" for v in st.values()):
            raise ConfigError(f"{self.output_dir} already holds pipeline stages ({st}); pass "
                              "--resume to continue, or choose a new output dir")
        results: dict[str, dict] = {}
        for i, stage in enumerate(self.stages):
            d = self.dirs[stage.name]
            if (d / DONE).exists():
                results[stage.name] = json.loads((d / DONE).read_text())["result"]
                self.say(f"[stage {i + 1}/{len(self.stages)}] {stage.name}: done earlier")
                continue
            started = d.exists()
            d.mkdir(parents=True, exist_ok=True)
            self.say(f"[stage {i + 1}/{len(self.stages)}] {stage.name}"
                     + (" (resuming)" if started else ""))
            ctx = StageContext(stage.name, i, d, started, dict(results), dict(self.dirs))
            res = stage.run(ctx)
            if res is None:
                res = {}
            tmp = d / (DONE + ".tmp")
            tmp.write_text(json.dumps({"stage": stage.name, "index": i, "result": res},
                                      indent=2, default=str))
            os.replace(tmp, d / DONE)
            if not self.keep_checkpoints:
                shutil.rmtree(d / "checkpoints", ignore_errors=True)
            results[stage.name] = res
        return results
