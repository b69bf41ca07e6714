"""``lmdistill search``: AdaBERT as a pipeline of stages over the one loop.

1. ``probes``  — the frozen fine-tuned teacher's layers → linear probes (cached); their
   held-out losses weight the layers.
2. ``search``  — the supernet and the architecture logits trained alternately (weights on the
   training rows, architecture on the held-out rows), Gumbel temperature annealed; the derived
   architecture (top-``keep_edges`` edges per node, most likely depth) → ``architecture.json``.
3. ``retrain`` — the derived student built from that JSON, cells from scratch (word
   embeddings from the teacher), trained with probe KD on all training rows → ``model/``.

Outputs under ``output_dir``: ``architecture.json``, ``costs.json`` (the per-op costs used),
``model/`` (an HF folder: ``evaluate``/``quantize``/``export``/``bench`` take it), the stages'
runs, ``metrics.json``, ``config.yaml`` and a report with the cell diagram and search curves.
A killed run resumes with ``resume=True`` (finished stages are not repeated).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import torch

from ... import config as C
from ...data.collate import encode
from ...errors import ConfigError
from ...models import hub
from ...models.adabert import AdaBertConfig, AdaBertForSequenceClassification, from_genotype
from ...models.students import count_params
from ...teachers import default_cache_dir
from ...train import runner
from ...train.loop import make_accelerator
from ...train.pipeline import Pipeline, Stage
from .costs import op_costs
from .objective import PROBE_ROW, AdaBertObjective, AdaBertSearchObjective
from .probes import build_probes


def split_heldout(n: int, share: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded split of n training rows: (weights rows, held-out rows)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = max(1, int(round(n * share)))
    if k >= n:
        raise ConfigError(f"adabert.heldout={share} leaves no training rows out of {n}")
    return sorted(order[k:]), sorted(order[:k])


def supernet_config(teacher, task, s: C.AdaBertSettings, genotype: dict | None = None
                    ) -> AdaBertConfig:
    emb = teacher.get_input_embeddings().weight
    tc = teacher.config
    return AdaBertConfig(vocab_size=emb.shape[0], embedding_size=emb.shape[1], hidden=s.hidden,
                         max_cells=s.max_cells, nodes=s.nodes, ops=list(s.ops),
                         genotype=genotype, type_vocab_size=getattr(tc, "type_vocab_size", 2),
                         pair=task.is_pair, num_labels=task.num_labels,
                         id2label=dict(enumerate(task.label_names)),
                         label2id={n: i for i, n in enumerate(task.label_names)},
                         pad_token_id=tc.pad_token_id or 0)


def _with_teacher_embeddings(model, teacher, freeze: bool):
    with torch.no_grad():
        model.embeddings.weight.copy_(teacher.get_input_embeddings().weight)
    model.embeddings.weight.requires_grad_(not freeze)
    return model


def search(cfg: C.SearchConfig, resume: bool = False) -> dict:
    """Run the AdaBERT pipeline of ``cfg``; returns the retrained student's metrics with the
    architecture, its parameters and the stages' results."""
    from accelerate.utils import set_seed

    t0 = time.time()
    s = cfg.adabert
    if not cfg.teacher.name:
        raise ConfigError("AdaBERT needs a fine-tuned teacher: set teacher.name (--teacher)")
    if "zero" in s.ops and len(s.ops) == 1:
        raise ConfigError("adabert.ops needs at least one operation besides zero")
    task = runner.load_task(cfg.data)
    if task.is_regression:
        raise ConfigError(f"AdaBERT's probes are classifiers; task '{task.name}' is a "
                          "regression task")
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    C.save(cfg, out / "config.yaml")
    accelerator = make_accelerator(cfg.train.mixed_precision)
    set_seed(cfg.train.seed)
    if cfg.train.num_threads:  # before the op latencies are timed
        torch.set_num_threads(cfg.train.num_threads)
    tokenizer = hub.load_tokenizer(cfg.teacher.name, cfg.teacher.trust_remote_code)
    teacher = hub.load_classifier(cfg.teacher.name, task.num_labels, task.label_names,
                                  cfg.teacher.trust_remote_code, quantized=False)
    runner.check_tokenizer(teacher, tokenizer, cfg.teacher.name)
    if not hasattr(teacher, "get_input_embeddings") or teacher.get_input_embeddings() is None:
        raise ConfigError("the AdaBERT teacher must be a transformer with word embeddings")
    examples = task.load(cfg.data.train_split, limit=cfg.data.limit, seed=cfg.train.seed)
    train_all = encode(examples, tokenizer, cfg.data.max_length)
    dev = runner.load_encoded(task, cfg.data.eval_split, tokenizer, cfg.data.max_length,
                              cfg.data.eval_limit)
    fit_rows, held_rows = split_heldout(len(train_all), s.heldout, cfg.train.seed)
    row_of = [0] * len(train_all)  # each row's place in the probes' logits [fit; held-out]
    for r, i in enumerate(fit_rows + held_rows):
        row_of[i] = r
    train_all.add_extra(PROBE_ROW, row_of)
    fit, held = train_all.subset(fit_rows), train_all.subset(held_rows)
    both = train_all
    cache = Path(cfg.teacher.cache_dir) if cfg.teacher.cache_dir else default_cache_dir()
    state: dict = {}

    def probes_stage(ctx):
        teacher.to(accelerator.device)
        ran_on = str(next(teacher.parameters()).device)
        p = build_probes(teacher, fit, held, task.num_labels, cache, s.probe_epochs,
                         s.probe_lr, cfg.teacher.batch_size, cfg.train.seed,
                         cfg.train.progress)
        teacher.to("cpu")
        state["probes"] = torch.cat([p["fit"], p["heldout"]])
        return {"probe_loss": p["loss"], "probe_accuracy": p["accuracy"],
                "cached": p["cached"], "rows": len(both),
                "teacher_device": "cache" if p["cached"] else ran_on}

    def ensure_probes(ctx):
        if "probes" not in state:  # a resumed run: the stage is done, the file is cached
            probes_stage(ctx)

    def search_stage(ctx):
        ensure_probes(ctx)
        costs = op_costs(s.ops, s.hidden, s.cost, cfg.train.batch_size, s.cost_length)
        (out / "costs.json").write_text(json.dumps(costs, indent=1))
        torch.manual_seed(cfg.train.seed)
        model = AdaBertForSequenceClassification(supernet_config(teacher, task, s))
        _with_teacher_embeddings(model, teacher, s.freeze_embeddings_search)
        obj = AdaBertSearchObjective(model, state["probes"], ctx.results["probes"]["probe_loss"],
                                     [costs["normalised"][o] for o in s.ops], held, s,
                                     cfg.train.seed)
        scfg = cfg.model_copy(update={"output_dir": str(ctx.dir)})
        res = runner.run_training(obj, task, fit, dev, scfg, ctx.resume, accelerator, t0,
                                  {"params_supernet": count_params(model)})
        obj.save_pretrained(ctx.dir)  # the final architecture (and its distribution)
        geno = obj.genotype()
        (out / "architecture.json").write_text(json.dumps(geno, indent=1))
        return {**res, "genotype": geno, "cost_kind": costs["kind"]}

    def retrain_stage(ctx):
        ensure_probes(ctx)
        geno = s.genotype or ctx.results["search"]["genotype"]
        torch.manual_seed(cfg.retrain.seed)
        model = from_genotype(geno, supernet_config(teacher, task, s))
        _with_teacher_embeddings(model, teacher, False)
        obj = AdaBertObjective(model, state["probes"], ctx.results["probes"]["probe_loss"],
                               s.gamma, s.temperature)
        rcfg = cfg.model_copy(update={"output_dir": str(ctx.dir), "train": cfg.retrain})
        res = runner.run_training(obj, task, both, dev, rcfg, ctx.resume, accelerator, t0, {
            "params": count_params(model),
            "params_no_emb": count_params(model, without_embeddings=True)})
        # the kept student: the best evaluation's model folder, with the tokenizer
        import shutil

        dst = out / "model"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(ctx.dir / "model", dst)
        tokenizer.save_pretrained(dst)
        return {**res, "genotype": geno}

    stages = [Stage("probes", probes_stage)]
    if s.genotype is None:
        stages.append(Stage("search", search_stage))
    stages.append(Stage("retrain", retrain_stage))
    results = Pipeline(stages, out, print if cfg.train.progress else None).run(resume=resume)
    final = results["retrain"]
    summary = {**{k: v for k, v in final.items() if k != "genotype"},
               "architecture": final["genotype"], "model_dir": str(out / "model"),
               "probe_loss": results["probes"]["probe_loss"],
               "probe_accuracy": results["probes"]["probe_accuracy"],
               "wall_seconds": round(time.time() - t0, 1)}
    if "search" in results:
        summary["search"] = {k: results["search"][k] for k in
                             ("accuracy", "steps", "train_seconds", "params_supernet")
                             if k in results["search"]}
    from ...report.adabert import write_search_report

    return runner.finish_pipeline(out, summary, lambda o, _: write_search_report(o))
