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

Model selection (``metakd.select_half``, default): each domain's dev rows are split in two
halves by a fixed seed (``metakd.select_seed``); every teacher and student is evaluated after
each epoch and its best epoch chosen on the *selection* half, and the figures reported are
those of the chosen model on the other half, never on the rows it was chosen on. (Stage 1 has
no trained head: its student is the last one.) Shared teachers are selected on every domain's
selection half, so every unit that retrains them gets the same teacher.

Stage 2 distils with soft targets only (``metakd.stage2_alpha`` = 1), as the paper: every
teacher goes through the same two stages, so the gold labels would only dilute the differences
between teachers that the study measures; the no-KD student is the gold-label reference.

The result: per target domain and method, the student's metric on the reported half (and the
teachers'), in ``metrics.json`` with ``per_domain`` and ``average`` (and ``*_select``, the
selection half); the report draws per-domain bars.
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
from .objective import (DOMAIN, ROW, MetaKDObjective, MetaTeacherObjective,
                        MultiTaskTeacherObjective, export_domain_teacher,
                        load_domain_embedding)
from .prototype import instance_weights, prototype_scores


def _with(ex: Example, **meta) -> Example:
    return Example(ex.text_a, ex.text_b, ex.label, ex.idx, {**(ex.meta or {}), **meta})


def _short(name: str) -> str:
    return name.split("-", 1)[1] if name.startswith("amazon-") else name


def split_halves(n: int, seed: int) -> tuple[list[int], list[int]]:
    """A seeded split of n dev rows into (selection, report) halves, sorted."""
    perm = np.random.default_rng(seed).permutation(n)
    return sorted(perm[: n // 2].tolist()), sorted(perm[n // 2:].tolist())


def stats(x) -> dict:
    x = np.asarray(x, dtype=float)
    return {"min": round(float(x.min()), 4), "max": round(float(x.max()), 4),
            "mean": round(float(x.mean()), 4), "sd": round(float(x.std()), 4), "n": len(x)}


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
        rng = np.random.default_rng(cfg.teacher_train.seed)  # shared by the student seeds
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

    def dev_examples(domains: list[str], half: str) -> list[Example]:
        """``half``: "select" (choose the best epoch on it), "report" (the figures) or "all"."""
        out = []
        for d in domains:
            rows = [_with(e, **{DOMAIN: dom_id[d]})
                    for e in tasks[d].load(cfg.data.eval_split, limit=cfg.data.eval_limit)]
            if s.select_half and half != "all":
                sel, rep = split_halves(len(rows), s.select_seed + dom_id[d])
                rows = [rows[i] for i in (sel if half == "select" else rep)]
            out += rows
        return out

    def per_epoch(train_cfg, n_rows: int):
        """Evaluate after every epoch (the best one is chosen on the selection half)."""
        steps = max(1, -(-n_rows // (train_cfg.batch_size * train_cfg.grad_accum)))
        return train_cfg.model_copy(update={"eval_every": train_cfg.eval_every or steps})

    def metrics_of(pred, exs: list[Example], domains: list[str], prefix: str) -> dict:
        """The primary metric on ``exs`` (all) and per domain, keys ``prefix``+name."""
        enc = encode(exs, tokenizer, cfg.data.max_length)
        logits = predict(pred, enc, cfg.train.eval_batch_size, accelerator)
        out = {f"{prefix}{first.primary_metric}":
               runner.task_metrics(first, logits, enc)[first.primary_metric]}
        if len(domains) > 1:
            dom = np.array([e.meta[DOMAIN] for e in exs])
            for d in domains:
                k = np.flatnonzero(dom == dom_id[d])
                sub = encode([exs[i] for i in k], tokenizer, cfg.data.max_length)
                out[f"{prefix}{_short(d)}"] = runner.task_metrics(
                    first, logits[k], sub)[first.primary_metric]
        return out

    def train_supervised(ctx, obj, exs: list[Example], eval_on: list[str], train_cfg,
                         extra: dict) -> dict:
        train = encode(exs, tokenizer, cfg.data.max_length)
        dev = encode(dev_examples(eval_on, "select"), tokenizer, cfg.data.max_length)
        report = dev_examples(eval_on, "report") if s.select_half else []
        train_cfg = per_epoch(train_cfg, len(train)) if s.select_half else train_cfg
        rcfg = C.FinetuneConfig(output_dir=str(ctx.dir), data=cfg.data, train=train_cfg,
                                model=C.ModelConfig(name=cfg.teacher_base))

        def evaluate(trainer):  # the selection half's metric decides; the report half rides
            trainer.model.eval()
            pred = trainer.unwrapped.predict
            m = metrics_of(pred, dev_examples(eval_on, "select"), eval_on, "select_")
            m[first.primary_metric] = m.pop(f"select_{first.primary_metric}")
            if report:
                m.update(metrics_of(pred, report, eval_on, "report_"))
            return m

        res = runner.run_training(obj, first, train, dev, rcfg, ctx.resume, accelerator, t0,
                                  {**extra, "rows": len(train)}, evaluate=evaluate)
        return {**res, "model": str(ctx.dir / "model")}

    def teacher_run(ctx, kind: str, target: str | None) -> dict:
        """Train one teacher in ctx.dir (evaluated on its target's dev, or every target's)."""
        rows = group_rows(target) if kind != "single" else [(target, i)
                                                            for i in target_rows(target)]
        exs = [full[d][i] for d, i in rows]
        extra = {"teacher": kind}
        if kind == "meta":
            t_raw = scores(rows)
            t = t_raw.clamp(min=0).tolist()  # weights must be >= 0
            exs = [_with(e, weight=float(w)) for e, w in zip(exs, t)]
            extra["prototype_scores"] = stats(t_raw)
        set_seed(cfg.teacher_train.seed)  # the same fresh heads in every unit that retrains it
        model = hub.load_classifier(cfg.teacher_base, first.num_labels, first.label_names)
        if kind == "meta":
            obj = MetaTeacherObjective(model, len(s.domains), s.lam, tokenizer,
                                       seed=cfg.teacher_train.seed)
        elif kind == "multitask":  # a domain without rows is predicted by the trained heads
            obj = MultiTaskTeacherObjective(model, len(s.domains), tokenizer,
                                            trained=sorted({dom_id[d] for d, _ in rows}))
        else:
            obj = SupervisedObjective(model, False, tokenizer)
        # a shared teacher is chosen on every domain's selection half, a group's on its target
        eval_on = [target] if target else list(s.domains)
        return train_supervised(ctx, obj, exs, eval_on, cfg.teacher_train, extra)

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
        if method != "metakd" or not s.student_weights:
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
        state[("weight_stats", target)] = {"prototype_scores": stats(t),
                                           "instance_weights": stats(state[("weights", target)]),
                                           "teacher_p_gold": stats(gold)}
        return [_with(e, weight=w) for e, w in zip(exs, state[("weights", target)])]

    def domain_targets(teacher: str, exs: list[Example]) -> torch.Tensor:
        tm = hub.load_classifier(teacher).to(accelerator.device)
        enc = encode(exs, tokenizer, cfg.data.max_length)
        h = pooled_hidden_states(tm, enc, layers=[-1])[:, 0]
        emb = load_domain_embedding(teacher)
        return h + emb[torch.tensor([e.meta[DOMAIN] for e in exs])]

    def report_of(model_dir: str, target: str) -> dict:
        """The chosen student on the reported rows: its metric and, per row, whether it is
        right (0/1, in the rows' order; for paired bootstraps across methods and seeds)."""
        m = hub.load_classifier(model_dir).to(accelerator.device).eval()
        exs = dev_examples([target], "report" if s.select_half else "all")
        enc = encode(exs, tokenizer, cfg.data.max_length)
        logits = predict(lambda b: m(**model_inputs(b)).logits, enc,
                         cfg.train.eval_batch_size, accelerator)
        prefix = "report_" if s.select_half else ""
        out = {f"{prefix}{first.primary_metric}":
               runner.task_metrics(first, logits, enc)[first.primary_metric]}
        if not first.is_regression:
            out["report_correct"] = (logits.argmax(-1) == np.asarray(enc.labels)).astype(
                int).tolist()
        return out

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
                res = train_supervised(ctx, SupervisedObjective(student, False, tokenizer),
                                       exs, [target], cfg.train, {"student": "nokd"})
                return {**res, **report_of(res["model"], target)}
            teacher = teacher_dir_for(ctx, method, target)
            exs = student_rows(target, method, teacher)
            prev = ctx.results.get(f"{method}-{_short(target)}-s1")
            kd = cfg.kd.model_copy(update={"logit_loss": False} if stage == 1 else
                                   {"features": [], "temperature": s.temperature,
                                    "alpha": s.stage2_alpha})
            student = cfg.student if stage == 1 else C.StudentConfig(kind="pretrained",
                                                                     base=prev["model"])
            tr = cfg.train.model_copy(update={"epochs": s.stage1_epochs if stage == 1
                                              else s.stage2_epochs})
            if stage == 2 and s.select_half:  # stage 1 trains no head: its last model is kept
                tr = per_epoch(tr, len(exs))
            dcfg = C.DistillConfig(output_dir=str(ctx.dir), data=task_cfg, student=student,
                                   kd=kd, train=tr, teacher=C.TeacherConfig(
                                       name=teacher, cache=stage == 2))
            factory = (with_domain_targets(domain_targets(teacher, exs), len(s.domains),
                                           s.domain_weight)
                       if method == "metakd" and stage == 1 else None)
            res = distill(dcfg, resume=ctx.resume, train_examples=exs,
                          objective_factory=factory,
                          eval_examples=dev_examples([target], "select"))
            res = {**res, "model": str(ctx.dir / "model"), "teacher": teacher}
            if ("weight_stats", target) in state and method == "metakd":
                res["weights"] = state[("weight_stats", target)]
            return {**res, **report_of(res["model"], target)} if stage == 2 else res
        return run

    # the prototype encoder's states are only needed by the meta-teacher and its students
    stages = [Stage("embeddings", embeddings)] if "metakd" in s.methods else []
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
    shown = f"report_{primary}" if s.select_half else primary
    table: dict[str, dict[str, float]] = {}
    select: dict[str, dict[str, float]] = {}
    for t in targets:
        for m in s.methods:
            key = f"nokd-{_short(t)}" if m == "nokd" else f"{m}-{_short(t)}-s2"
            if key in results:
                table.setdefault(m, {})[_short(t)] = results[key][shown]
                select.setdefault(m, {})[_short(t)] = results[key][primary]
    teachers = {k: v for k, v in results.items()
                if k.split("-")[0] in ("meta", "mixed", "multitask", "single")
                and not k.endswith(("-s1", "-s2"))}
    summary = {"primary": primary, "setting": {"fraction": s.fraction,
                                               "no_in_domain": s.no_in_domain,
                                               "student_weights": s.student_weights,
                                               "select_half": s.select_half,
                                               "select_seed": s.select_seed},
               "reported_on": "report half of dev" if s.select_half else "all dev rows",
               "per_domain": table,
               "average": {m: float(np.mean(list(v.values()))) for m, v in table.items()},
               "per_domain_select": select,
               "report_correct": {m: {_short(t): results[k]["report_correct"]
                                      for t in targets for k in [
                                          f"nokd-{_short(t)}" if m == "nokd"
                                          else f"{m}-{_short(t)}-s2"]
                                      if "report_correct" in results.get(k, {})}
                                  for m in s.methods},
               "teachers": {k: v.get(shown) for k, v in teachers.items()},
               "teachers_per_domain": {k: {kk[len("report_"):]: vv for kk, vv in v.items()
                                           if kk.startswith("report_") and kk != shown}
                                       for k, v in teachers.items()},
               "teachers_select": {k: v.get(primary) for k, v in teachers.items()},
               "teacher_best_step": {k: v.get("best_step") for k, v in teachers.items()},
               "prototype_scores": {k: v["prototype_scores"] for k, v in teachers.items()
                                    if "prototype_scores" in v},
               "student_weights": {k: v["weights"] for k, v in results.items()
                                   if "weights" in v},
               "stage_wall_seconds": {k: v.get("train_seconds") for k, v in results.items()
                                      if isinstance(v, dict)},
               "wall_seconds": round(time.time() - t0, 1)}
    from ...report.metakd import write_metakd_report

    return runner.finish_pipeline(out, summary, write_metakd_report)
