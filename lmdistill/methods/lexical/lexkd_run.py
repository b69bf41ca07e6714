"""``lmdistill lexical-kd``: a small student learns lexical knowledge from the NN sense teacher
(:mod:`.lexkd`), then is scored as an NN sense encoder exactly as the teacher is.

A resumable :class:`~lmdistill.train.pipeline.Pipeline` in ``output_dir``:

1. ``student``: the student built from the teacher's encoder (``student``: by default its
   2-layer subset, layers [2, 5] of a 6-layer teacher), saved as an HF folder;
2. ``targets`` (KD only): one teacher pass over the training sentences, the target vector of
   every kept target, cached on disk by content (``lexical.cache_dir``) so that runs with the
   same teacher, sentences, layers and length share it;
3. ``table`` (``sense_table=learned`` only): the sense table's initial values, the means of
   the initial student's own target vectors per gold sense;
4. ``train``: the objective over the one loop (``train``), scored at its end on the teacher's
   held-out documents (``loss``, the primary metric; ``cosine`` to the teacher, ``sense_accuracy``);
5. ``wsd``: the trained student as the encoder of the NN procedure: its sense vectors from the
   corpus with the teacher's held-out documents kept out (the same seeded split), every choice
   tuned on those documents, then the official F1 on ``lexical.eval_sets`` with MFS and the
   ≤4 / >4 candidates split (:func:`.lmms_tune.evaluate_lmms`).

Training sentences are the corpus's minus the held-out documents (``data.limit``: a seeded
subset of them, seed ``train.seed``); nothing is chosen on an evaluation set.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import config as C
from ...errors import ConfigError, DataError
from ...schedules import make_schedule
from ...train import runner
from ...train.pipeline import Pipeline, Stage
from .lexkd import LexicalKD, encode_targets, evaluate_targets, teacher_targets
from .lmms import _index, _load, _save, build_sense_vectors


@dataclass
class _Corpus:
    """What the run tail needs of the "task"."""
    name: str
    primary_metric: str = "loss"


def _positive(spec) -> bool:
    s = make_schedule(spec, total_steps=1)
    return bool(s.start or s.end)


class _Data:
    """The corpus split (training sentences, held-out documents' sentences), the sense keys
    of the table and the encoded rows, loaded once per run."""

    def __init__(self, cfg: C.LexicalKDConfig, tix: dict):
        from ...data.wordnet import load_wordnet
        from ...data.wsd import load_corpus

        self.cfg, self.tix = cfg, tix
        sents, self.gold = load_corpus(tix["corpus"], cfg.data.data_dir)
        held = set(tix["heldout_documents"])
        self.train_s = [s for s in sents if s.instances and s.id.split(".")[0] not in held]
        self.held_s = [s for s in sents if s.instances and s.id.split(".")[0] in held]
        lim = cfg.data.limit
        if lim is not None and lim < len(self.train_s):
            keep = sorted(random.Random(cfg.train.seed).sample(range(len(self.train_s)), lim))
            self.train_s = [self.train_s[i] for i in keep]
        self.keys = sorted({k for s in self.train_s for _, t in s.instances
                            for k in self.gold.get(t.id, [])})
        self.wn = load_wordnet(cfg.data.data_dir)
        self._enc = None

    def encoded(self, tokenizer, row: dict[str, int]):
        if self._enc is None:
            m = self.cfg.data.max_length
            self._enc = (encode_targets(self.train_s, self.gold, tokenizer, m, row, self.wn),
                         encode_targets(self.held_s, self.gold, tokenizer, m, row, self.wn))
        return self._enc


def teacher_table(folder: Path, tix: dict, keys: list[str], layers: list[int]
                  ) -> tuple[np.ndarray, list[str]]:
    """The teacher's sense means (its training documents only) in its target space (the mean
    of ``layers``) for those of ``keys`` it has; ``(table [S, d], keys kept)``."""
    st = _load(folder / "senses.safetensors")
    have = {k: i for i, k in enumerate(tix["keys"]) if st["counts"][i] > 0}
    kept = [k for k in keys if k in have]
    rows = [have[k] for k in kept]
    sums = st["sums"][rows][:, layers].mean(1)
    return (sums / st["counts"][rows][:, None]).astype(np.float32), kept


def _cache_path(cfg: C.LexicalKDConfig, tix: dict, tdir: Path, layers, ids) -> Path:
    from ...cache import cache_root

    h = hashlib.sha256(json.dumps([tix["encoder"], str(tdir.resolve()), tix["seconds"],
                                   list(layers), cfg.data.max_length]).encode())
    h.update("\n".join(ids).encode())
    root = Path(cfg.lexical.cache_dir) if cfg.lexical.cache_dir else cache_root() / "lexical"
    return root / f"targets-{h.hexdigest()[:24]}.safetensors"


def lexical_kd(cfg: C.LexicalKDConfig, resume: bool = False) -> dict:
    """Run (or resume) the pipeline of the module docstring; returns its summary."""
    from transformers import AutoModel

    from ...models import hub
    from ...models import students as S

    t0 = time.time()
    lx, out = cfg.lexical, Path(cfg.output_dir)
    if not lx.teacher_vectors:
        raise ConfigError("lexical.teacher_vectors: the NN sense teacher's folder is required "
                          "(lmdistill wsd --sense-vectors DIR builds one)")
    tdir = Path(lx.teacher_vectors)
    if not (tdir / "index.json").exists():
        raise DataError(f"no sense vectors in {tdir} (lmdistill wsd --sense-vectors builds them)")
    tix = _index(tdir, full=True)
    if cfg.data.task != tix["corpus"]:
        raise ConfigError(f"data.task '{cfg.data.task}' is not the corpus the teacher's vectors "
                          f"come from ('{tix['corpus']}')")
    if not tix["heldout_documents"]:
        raise DataError(f"{tdir} has no held-out documents (build it with holdout > 0): the "
                        "student's choice could not be tuned")
    layers = list(lx.teacher_layers or (tix.get("choice") or {}).get("layers") or [-1])
    n = tix["n_states"]
    if any(not -n <= i < n for i in layers):
        raise ConfigError(f"lexical.teacher_layers {layers}: the teacher has {n} hidden states")
    needs_t = _positive(lx.kd_weight) or (_positive(lx.sense_weight)
                                          and lx.sense_target == "teacher")
    learned = lx.sense_table == "learned"
    data = _Data(cfg, tix)
    say = print if cfg.train.progress else (lambda m: None)

    def student_stage(ctx):
        base = AutoModel.from_pretrained(hub.resolve(cfg.student.base or tix["encoder"]))
        student = S.build_student(cfg.student, base)
        hub.save_model(student, ctx.dir / "model",
                       hub.load_tokenizer(cfg.student.base or tix["encoder"]))
        return {"model": str(ctx.dir / "model"), "params": S.count_params(student),
                "layers": student.config.num_hidden_layers}

    memo: dict = {}

    def table_rows() -> tuple[np.ndarray | None, dict[str, int]]:
        """The teacher's table (None when learned) and its rows by sense key, once."""
        if "table" not in memo:
            memo["table"] = ((None, data.keys) if learned
                             else teacher_table(tdir, tix, data.keys, layers))
        table, keys = memo["table"]
        return table, {k: i for i, k in enumerate(keys)}

    def encoded(ctx):
        model = str(ctx.dir_of("student") / "model")
        return model, *data.encoded(hub.load_tokenizer(model), table_rows()[1])

    def targets_stage(ctx):
        from .encoder import TokenEncoder

        t = time.time()
        _, train, _ = encoded(ctx)
        path = _cache_path(cfg, tix, tdir, layers, train.ids)
        reused = path.exists()
        if not reused:
            enc = TokenEncoder(tix["encoder"], cfg.data.max_length)
            path.parent.mkdir(parents=True, exist_ok=True)
            _save(path, {"targets": teacher_targets(train, enc, layers,
                                                    progress=cfg.train.progress)})
        return {"cache": str(path), "targets": train.n_targets, "reused": reused,
                "seconds": round(time.time() - t, 1)}

    def table_stage(ctx):
        from .encoder import TokenEncoder

        t = time.time()
        model, train, _ = encoded(ctx)
        enc = TokenEncoder(model, cfg.data.max_length)
        sums = np.zeros((len(data.keys), enc.dim), np.float32)
        counts = np.zeros(len(data.keys), np.int64)
        vec = teacher_targets(train, enc, [lx.student_layer], progress=cfg.train.progress)
        row = table_rows()[1]
        for i, tid in enumerate(train.ids):
            for k in data.gold.get(tid, []):
                if k in row:
                    sums[row[k]] += vec[i]
                    counts[row[k]] += 1
        _save(ctx.dir / "table.safetensors", {"table": sums / np.maximum(counts, 1)[:, None]})
        return {"senses": len(data.keys), "covered": int((counts > 0).sum()),
                "seconds": round(time.time() - t, 1)}

    def train_stage(ctx):
        import torch
        from accelerate.utils import set_seed

        from ...train.loop import make_accelerator

        model, train, held = encoded(ctx)
        if needs_t:
            train.tvec = _load(Path(ctx.results["targets"]["cache"]))["targets"]
        hv = _load(tdir / "heldout.safetensors")["vectors"]
        at = {t["id"]: i for i, t in enumerate(tix["heldout"])}
        held.tvec = hv[[at[i] for i in held.ids]][:, layers].mean(1).astype(np.float32)
        table = (_load(ctx.dir_of("table") / "table.safetensors")["table"] if learned
                 else table_rows()[0])
        set_seed(cfg.train.seed)
        obj = LexicalKD(AutoModel.from_pretrained(model), hub.load_tokenizer(model),
                        torch.from_numpy(table),
                        learned, lx.kd_weight, lx.sense_weight, lx.temperature, lx.kd_loss,
                        lx.sense_target, lx.student_layer, lx.table_lr)
        run_cfg = cfg.model_copy(update={"output_dir": str(ctx.dir)})
        return runner.run_training(
            obj, _Corpus(tix["corpus"]), train, held, run_cfg, ctx.resume,
            make_accelerator(cfg.train.mixed_precision), time.time(),
            {"train_sentences": len(train), "train_targets": train.n_targets,
             "heldout_sentences": len(held), "heldout_targets": held.n_targets,
             "table_senses": len(table), "teacher_layers": layers},
            evaluate=lambda tr: evaluate_targets(tr.unwrapped, held,
                                                 cfg.train.eval_batch_size,
                                                 tr.accelerator.device))

    def wsd_stage(ctx):
        from .lmms_tune import evaluate_lmms, tune

        t = time.time()
        model = str(ctx.dir_of("train") / "model")
        folder = ctx.dir / "sense-vectors"
        ix = build_sense_vectors(folder, model, tix["corpus"], cfg.data.data_dir,
                                 tix["holdout"], tix["seed"], tix.get("max_length", 512),
                                 progress=cfg.train.progress)
        if ix["heldout_documents"] != tix["heldout_documents"]:
            raise DataError("the student's held-out documents are not the teacher's")
        tuning = tune(folder, cfg.data.data_dir) if not ix.get("choice") else {}
        res = evaluate_lmms(folder, lx.eval_sets, cfg.data.data_dir)
        return {"params": S.count_params(AutoModel.from_pretrained(model)),
                "tuning": {k: v for k, v in tuning.items() if k != "table"},
                "build_seconds": ix["seconds"], **res, "seconds": round(time.time() - t, 1)}

    stages = [Stage("student", student_stage)]
    stages += [Stage("targets", targets_stage)] if needs_t else []
    stages += [Stage("table", table_stage)] if learned else []
    stages += [Stage("train", train_stage), Stage("wsd", wsd_stage)]
    results = Pipeline(stages, out, say).run(resume=resume)
    return runner.finish_pipeline(out, summary(results, cfg, tix, layers, t0), write_report)


def summary(results: dict, cfg: C.LexicalKDConfig, tix: dict, layers, t0: float) -> dict:
    w = results["wsd"]
    sets = {name: {"f1": r["model"]["f1"], "mfs_f1": r["mfs"]["f1"], "backoff": r["backoff"],
                   **{k: r["by_candidates"]["model"][k]["f1"] for k in ("le4", "gt4")}}
            for name, r in w["sets"].items()}
    return {"params": w["params"], "teacher": tix["encoder"],
            "teacher_vectors": cfg.lexical.teacher_vectors, "teacher_layers": layers,
            "lexical": cfg.lexical.model_dump(mode="json"), "wsd": sets, "choice": w["choice"],
            "tuning": w["tuning"], "train": results["train"],
            "targets": results.get("targets"), "table": results.get("table"),
            "student": results["student"], "sets": w["sets"],
            "stage_seconds": {k: v.get("seconds", v.get("wall_seconds"))
                              for k, v in results.items() if isinstance(v, dict)},
            "wall_seconds": round(time.time() - t0, 1)}


def write_report(out: Path, s: dict) -> None:
    """``report.md``: the student's F1 per set beside MFS."""
    lines = [f"# Lexical KD: {s['params'] / 1e6:.1f}M-parameter student of {s['teacher']}", "",
             "| set | student F1 | MFS F1 | ≤4 cand. | >4 cand. |", "|---|---|---|---|---|"]
    for name, r in s["wsd"].items():
        lines.append(f"| {name} | {100 * r['f1']:.1f} | {100 * r['mfs_f1']:.1f} | "
                     f"{100 * r['le4']:.1f} | {100 * r['gt4']:.1f} |")
    lines += ["", f"Choice (tuned on the held-out documents): `{json.dumps(s['choice'])}`."]
    (Path(out) / "report.md").write_text("\n".join(lines) + "\n")
