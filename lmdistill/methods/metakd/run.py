"""``lmdistill metakd``: Meta-KD and its baselines as one resumable pipeline over the one loop.

Stages (each its own folder under ``output_dir/stages``; a killed run resumes):

1. ``embeddings`` — mean-pooled last hidden states of every training row of every domain
   under the prototype encoder (the teacher base, before fine-tuning), cached.
2. teachers, per *teacher group* (one shared group when every domain is used in full; one per
   target domain when the target is cut to a fraction or left out):
   ``meta-<g>`` (prototype-weighted CE + λ·CE of the shuffled-domain head), ``mixed-<g>``
   (all rows mixed, plain CE), ``multitask-<g>`` (shared encoder, one head per domain), and
   ``single-<d>`` (the target domain only; skipped with no in-domain data).
3. students, per target domain and method: two stages for every teacher (stage 1: hidden and
   attention matching; stage 2: soft-label KD at τ = 2), the same student initialisation and
   data for all; Meta-KD adds the per-instance weights (1+t)·1/(1+exp((1−p_T(gold))²)) on every
   term of both stages and the domain-representation MSE in stage 1; ``nokd`` fine-tunes the
   same student on the target rows.

The result: per target domain and method, the student's dev metric (and the teachers'), in
``metrics.json`` with ``per_domain`` and ``average``; the report draws per-domain bars.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ... import config as C
from ...data.collate import encode
from ...data.tasks import Example, get_task
from ...errors import ConfigError
from ...models import hub
from ...teachers import default_cache_dir, fingerprint_model
from ...train import runner
from ...train.loop import make_accelerator
from ...train.pipeline import Pipeline, Stage
from ...train.predict import pooled_hidden_states, predict
from .objective import (DOMAIN, ROW, SHUFFLED, MetaKDObjective, MetaTeacherObjective,
                        MultiTaskTeacherObjective, export_domain_teacher,
                        load_domain_embedding, shuffled_domains)
from .prototype import instance_weights, prototype_scores


def _with(ex: Example, **meta) -> Example:
    return Example(ex.text_a, ex.text_b, ex.label, ex.idx, {**(ex.meta or {}), **meta})


def _short(name: str) -> str:
    return name.split("-", 1)[1] if name.startswith("amazon-") else name


def with_domain_targets(reps: torch.Tensor, num_domains: int, weight: float):
    """An ``objective_factory`` for ``distill``: a :class:`MetaKDObjective` with the
    meta-teacher's domain representations of the training rows."""
    def factory(*a, **kw):
        o = MetaKDObjective(*a, **kw)
        o.set_domain_targets(reps, num_domains, weight)
        return o
    return factory


def metakd(cfg: C.MetaKDConfig, resume: bool = False) -> dict:
    """Run Meta-KD and the baselines of ``cfg``; returns the per-domain table."""
    from accelerate.utils import set_seed

    from ..finetune import SupervisedObjective, model_inputs
    from ..kd.run import distill

    t0 = time.time()
    s = cfg.metakd
    if len(s.domains) < 2:
        raise ConfigError("Meta-KD needs at least two domains (metakd.domains)")
    targets = s.targets or list(s.domains)
    unknown = [t for t in targets if t not in s.domains]
    if unknown:
        raise ConfigError(f"metakd.targets {unknown} are not in metakd.domains {s.domains}")
    tasks = {d: get_task(d, data_dir=cfg.data.data_dir) for d in s.domains}
    first = tasks[s.domains[0]]
    for d, t in tasks.items():
        if t.is_regression or t.label_names != first.label_names:
            raise ConfigError(f"domain '{d}' must be a classification task with the labels "
                              f"of '{s.domains[0]}' ({first.label_names})")
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    C.save(cfg, out / "config.yaml")
    accelerator = make_accelerator(cfg.train.mixed_precision)
    set_seed(cfg.train.seed)
    dom_id = {d: i for i, d in enumerate(s.domains)}
    tokenizer = hub.load_tokenizer(cfg.teacher_base)

    # every domain's training rows (the target fraction applied per teacher group below)
    full = {d: [_with(e, **{DOMAIN: dom_id[d]}) for e in tasks[d].load(
        cfg.data.train_split, limit=cfg.data.limit, seed=cfg.train.seed)]  # limit: per domain
            for d in s.domains}
    order = [(d, i) for d in s.domains for i in range(len(full[d]))]
    row_of = {key: r for r, key in enumerate(order)}

    def target_rows(d: str) -> list[int]:
        """The target domain's available rows (a seeded subset when fraction < 1)."""
        n = len(full[d])
        if s.fraction >= 1:
            return list(range(n))
        k = max(2, int(round(n * s.fraction)))
        rng = np.random.default_rng(cfg.train.seed)
        return sorted(rng.choice(n, k, replace=False).tolist())

    shared = s.fraction >= 1 and not s.no_in_domain
    groups = {"all": None} if shared else {_short(t): t for t in targets}

    def group_rows(target: str | None) -> list[tuple[str, int]]:
        rows = []
        for d in s.domains:
            if target is not None and d == target:
                if s.no_in_domain:
                    continue
                rows += [(d, i) for i in target_rows(d)]
            else:
                rows += [(d, i) for i in range(len(full[d]))]
        return rows

    cache = default_cache_dir()
    state: dict = {}

    def embeddings(ctx):
        ref = s.prototype_model or cfg.teacher_base
        model = hub.load_classifier(ref, first.num_labels, first.label_names)
        from safetensors.torch import load_file, save_file

        from ...cache import content_key

        enc = encode([full[d][i] for d, i in order], tokenizer, cfg.data.max_length)
        key = content_key(fingerprint_model(model), [enc], {"what": "pooled-last", "v": 1})
        path = cache / f"pooled-{key}.safetensors"
        if path.exists():
            h = load_file(str(path))["h"]
        else:
            h = pooled_hidden_states(model.to(accelerator.device), enc,
                                     progress=cfg.train.progress, layers=[-1])[:, 0]
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"h": h.contiguous()}, str(path))
        state["h"] = h
        return {"rows": len(order), "model": ref}

    def scores(rows: list[tuple[str, int]]) -> torch.Tensor:
        if "h" not in state:
            embeddings(None)
        idx = torch.tensor([row_of[r] for r in rows])
        return prototype_scores(state["h"][idx], torch.tensor([dom_id[d] for d, _ in rows]))

    def dev_examples(domains: list[str]) -> list[Example]:
        return [_with(e, **{DOMAIN: dom_id[d]}) for d in domains
                for e in tasks[d].load(cfg.data.eval_split, limit=cfg.data.eval_limit)]

    def train_supervised(ctx, obj, exs: list[Example], eval_on: list[str], train_cfg,
                         extra: dict) -> dict:
        train = encode(exs, tokenizer, cfg.data.max_length)
        dev = encode(dev_examples(eval_on), tokenizer, cfg.data.max_length)
        rcfg = C.FinetuneConfig(output_dir=str(ctx.dir), data=cfg.data, train=train_cfg,
                                model=C.ModelConfig(name=cfg.teacher_base))
        res = runner.run_training(obj, first, train, dev, rcfg, ctx.resume, accelerator, t0,
                                  {**extra, "rows": len(train)})
        return {**res, "model": str(ctx.dir / "model")}

    def teacher_run(ctx, kind: str, target: str | None) -> dict:
        """Train one teacher in ctx.dir (evaluated on its target's dev, or every target's)."""
        rows = group_rows(target) if kind != "single" else [(target, i)
                                                            for i in target_rows(target)]
        exs = [full[d][i] for d, i in rows]
        if kind == "meta":
            t = scores(rows).clamp(min=0).tolist()  # weights must be >= 0
            shuf = shuffled_domains([dom_id[d] for d, _ in rows], cfg.train.seed)
            exs = [_with(e, weight=float(w), **{SHUFFLED: sd})
                   for e, w, sd in zip(exs, t, shuf)]
        model = hub.load_classifier(cfg.teacher_base, first.num_labels, first.label_names)
        if kind == "meta":
            obj = MetaTeacherObjective(model, len(s.domains), s.lam, tokenizer)
        elif kind == "multitask":
            obj = MultiTaskTeacherObjective(model, len(s.domains), tokenizer)
        else:
            obj = SupervisedObjective(model, False, tokenizer)
        return train_supervised(ctx, obj, exs, [target] if target else list(targets),
                                cfg.teacher_train, {"teacher": kind})

    def teacher_dir_for(ctx, method: str, target: str) -> str:
        if method == "single":
            return ctx.results[f"single-{_short(target)}"]["model"]
        kind = "meta" if method == "metakd" else method
        res = ctx.results[f"{kind}-{'all' if shared else _short(target)}"]
        if method != "multitask":
            return res["model"]
        d = ctx.dir / "teacher"  # the multi-task teacher's head for this domain, as a folder
        if not (d / "config.json").exists():
            export_domain_teacher(res["model"], dom_id[target], d, hub.load_classifier)
        return str(d)

    def student_rows(target: str, method: str, teacher: str) -> list[Example]:
        rows = [(target, i) for i in target_rows(target)]
        exs = [_with(full[d][i], **{ROW: r}) for r, (d, i) in enumerate(rows)]
        if method != "metakd":
            return exs
        if ("weights", target) in state:  # stage 2 reuses stage 1's (same teacher, same rows)
            return [_with(e, weight=w) for e, w in zip(exs, state[("weights", target)])]
        # Meta-KD's instance weights: prototype score (over the teacher's group) and the
        # meta-teacher's probability of the gold label
        group = group_rows(None if shared else target)
        seen = set(group)
        rows_all = group + [r for r in rows if r not in seen]  # no in-domain: add the target
        t_all = scores(rows_all)
        where = {r: k for k, r in enumerate(rows_all)}
        t = torch.stack([t_all[where[r]] for r in rows]).clamp(min=0)
        tm = hub.load_classifier(teacher).to(accelerator.device).eval()
        enc = encode(exs, tokenizer, cfg.data.max_length)
        logits = predict(lambda b: tm(**model_inputs(b)).logits, enc,
                         cfg.train.eval_batch_size, accelerator)
        p = torch.from_numpy(logits).float().softmax(-1)
        gold = p[torch.arange(len(exs)), torch.tensor([e.label for e in exs])]
        state[("weights", target)] = instance_weights(t, gold).tolist()
        return [_with(e, weight=w) for e, w in zip(exs, state[("weights", target)])]

    def domain_targets(teacher: str, exs: list[Example]) -> torch.Tensor:
        tm = hub.load_classifier(teacher).to(accelerator.device)
        enc = encode(exs, tokenizer, cfg.data.max_length)
        h = pooled_hidden_states(tm, enc, layers=[-1])[:, 0]
        emb = load_domain_embedding(teacher)
        return h + emb[torch.tensor([e.meta[DOMAIN] for e in exs])]

    def student_stage(method: str, target: str, stage: int):
        def run(ctx):
            task_cfg = cfg.data.model_copy(update={"task": target})
            if method == "nokd":  # the same student, initialisation and rows, no teacher
                from ...models.students import build_student

                set_seed(cfg.train.seed)  # as distill does: the same fresh head
                base = hub.load_classifier(cfg.student.base or cfg.teacher_base,
                                           first.num_labels, first.label_names)
                student = build_student(cfg.student, base)
                exs = [full[target][i] for i in target_rows(target)]
                return train_supervised(ctx, SupervisedObjective(student, False, tokenizer),
                                        exs, [target], cfg.train, {"student": "nokd"})
            teacher = teacher_dir_for(ctx, method, target)
            exs = student_rows(target, method, teacher)
            prev = ctx.results.get(f"{method}-{_short(target)}-s1")
            kd = cfg.kd.model_copy(update={"logit_loss": False} if stage == 1 else
                                   {"features": [], "temperature": s.temperature})
            student = cfg.student if stage == 1 else C.StudentConfig(kind="pretrained",
                                                                     base=prev["model"])
            tr = cfg.train.model_copy(update={"epochs": s.stage1_epochs} if stage == 1 else {})
            dcfg = C.DistillConfig(output_dir=str(ctx.dir), data=task_cfg, student=student,
                                   kd=kd, train=tr, teacher=C.TeacherConfig(
                                       name=teacher, cache=stage == 2))
            factory = (with_domain_targets(domain_targets(teacher, exs), len(s.domains),
                                           s.domain_weight)
                       if method == "metakd" and stage == 1 else None)
            res = distill(dcfg, resume=ctx.resume, train_examples=exs,
                          objective_factory=factory)
            return {**res, "model": str(ctx.dir / "model"), "teacher": teacher}
        return run

    stages = [Stage("embeddings", embeddings)]
    for g, target in groups.items():
        for kind in ("meta", "mixed", "multitask"):
            if {"meta": "metakd"}.get(kind, kind) in s.methods:
                stages.append(Stage(f"{kind}-{g}", lambda ctx, k=kind, t=target:
                                    teacher_run(ctx, k, t)))
    if "single" in s.methods and not s.no_in_domain:
        for t in targets:
            stages.append(Stage(f"single-{_short(t)}", lambda ctx, t=t:
                                teacher_run(ctx, "single", t)))
    for t in targets:
        for m in s.methods:
            if m == "single" and s.no_in_domain:
                continue
            if m == "nokd":
                stages.append(Stage(f"nokd-{_short(t)}", student_stage(m, t, 0)))
                continue
            stages.append(Stage(f"{m}-{_short(t)}-s1", student_stage(m, t, 1)))
            stages.append(Stage(f"{m}-{_short(t)}-s2", student_stage(m, t, 2)))
    results = Pipeline(stages, out, print if cfg.train.progress else None).run(resume=resume)

    primary = first.primary_metric
    table: dict[str, dict[str, float]] = {}
    for t in targets:
        for m in s.methods:
            key = f"nokd-{_short(t)}" if m == "nokd" else f"{m}-{_short(t)}-s2"
            if key in results:
                table.setdefault(m, {})[_short(t)] = results[key][primary]
    summary = {"primary": primary, "setting": {"fraction": s.fraction,
                                               "no_in_domain": s.no_in_domain},
               "per_domain": table,
               "average": {m: float(np.mean(list(v.values()))) for m, v in table.items()},
               "teachers": {k: v.get(primary) for k, v in results.items()
                            if k.split("-")[0] in ("meta", "mixed", "multitask", "single")
                            and not k.endswith(("-s1", "-s2"))},
               "wall_seconds": round(time.time() - t0, 1)}
    from ...report.metakd import write_metakd_report

    return runner.finish_pipeline(out, summary, write_metakd_report)
