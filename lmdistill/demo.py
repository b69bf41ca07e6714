"""``make demo``: the main job, end to end on real data and real pretrained weights.

Stage 1 (foundation): fine-tune the ``minilm-l6`` teacher on a seeded SST-2 subset and
evaluate it on the full SST-2 dev set.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import api
from . import config as C


def run(data_dir: str | None = None, out: str = "runs/demo", train_limit: int = 4000,
        epochs: float = 1.0, resume: bool = False) -> dict:
    t0 = time.time()
    out_p = Path(out)
    teacher_cfg = C.build(C.FinetuneConfig, overrides={
        "output_dir": str(out_p / "teacher"), "data.task": "sst2", "data.data_dir": data_dir,
        "data.limit": train_limit, "model.name": "minilm-l6", "train.epochs": epochs,
        "train.batch_size": 32, "train.lr": 5e-5, "train.eval_every": 100,
    })
    print(f"[demo] fine-tuning minilm-l6 on {train_limit} SST-2 examples -> {out_p / 'teacher'}")
    ft = api.finetune(teacher_cfg, resume=resume)
    print("[demo] evaluating the saved teacher on the full SST-2 dev set")
    ev = api.evaluate(str(out_p / "teacher" / "model"), "sst2", "dev", data_dir)
    summary = {"finetune": ft, "evaluate": ev, "demo_seconds": round(time.time() - t0, 1)}
    api.write_json(out_p / "demo.json", summary)
    print(f"\n  teacher minilm-l6 on SST-2 dev: accuracy {ev['accuracy']:.4f} "
          f"({ev['examples']} examples, {ev['seconds']} s)\n"
          f"  fine-tuned on {ft['train_examples']} examples in {ft['wall_seconds']} s\n"
          f"  outputs: {out_p}  (model/, metrics.json, config.yaml, metrics.jsonl)")
    return summary


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
