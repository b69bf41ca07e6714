"""``lmdistill l2a``: learning to augment as a resumable pipeline of rounds over the one loop.

1. ``teacher`` — fine-tuned on the source rows plus the available target rows (skipped when
   ``teacher.name`` is given).
2. ``round-00`` — the student distilled on the available target rows only (the reward rows,
   a held-out share of them, are never trained on); its metric there is the first baseline.
3. ``round-NN`` — the generator proposes candidates (chains from source and target samples);
   the selector keeps or drops each from its features (teacher confidence and margin,
   student–teacher KL, similarity to the target, origin); the student of the previous round
   is distilled on the target rows plus every candidate kept so far (teacher-labelled, soft
   loss only); the reward is the change of its metric on the reward rows; the selector takes
   a REINFORCE step. The selector's state is saved with each round.

The final student (the last round's) is evaluated on the target task's eval split; the
report draws the reward, kept fraction and held-out metric per round.

With ``l2a.generator_steps`` a ``generator`` stage first trains the generator's masked LM
(the whole model) on the source and available target texts and reports its held-out
masked-token accuracy; the rounds (and CBERT) then use it.

Baselines in the same pipeline (``l2a.augmenter``), in the same rounds so that every row of a
comparison trains its student for the same number of steps, each adding its share of
``augment_samples`` rows a round (all kept, teacher-labelled) instead of the generator's
selected candidates: ``eda`` / ``cbert`` augmented copies of the target rows; ``random`` the
generator's pool of the round (the very candidates L2A's selector sees) kept at random;
``generated-all`` every candidate of the pool; ``source`` source rows, no generation. ``none``
trains the same rounds on the target rows alone. Same seed, same rows, same teacher, same
round-0 student.
Each round continues from the previous round's student, so without matched rounds a method
with more rounds would win on training length alone; ``train.min_steps`` keeps a round on a
few dozen target rows from being two optimizer steps.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

import torch

from ... import config as C
from ...data.collate import encode
from ...data.tasks import Example, get_task
from ...errors import ConfigError
from ...models import hub
from ...train import runner
from ...train.pipeline import Pipeline, Stage
from ...train.predict import pooled_hidden_states, predict
from .generator import Generator
from .selector import FEATURES, Selector, candidate_features, influence_rewards

SELECTOR_FILE = "selector.json"


def _texts(rows: list[Example]):
    return [(e.text_a, e.text_b) if e.text_b is not None else e.text_a for e in rows]


def _device() -> torch.device:
    """Where L2A's feature passes (teacher, student, embeddings) run: a CUDA GPU if present."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _logits(model_dir: str, texts, max_length: int, head_inputs: bool = False):
    """``(logits, model, encoded texts, head inputs)``: the model's logits over ``texts`` (on
    the CPU), the model (on :func:`_device`), the encoded texts and, with ``head_inputs``, the
    input of its classifier layer per text [N, D] (what
    :func:`~lmdistill.methods.l2a.selector.influence_rewards` needs; else None), all from one
    pass."""
    from ..finetune import model_inputs

    tok = hub.load_tokenizer(model_dir)
    dev = _device()
    m = hub.load_classifier(model_dir).eval().to(dev)
    enc = encode([Example(t[0] if isinstance(t, tuple) else t,
                          t[1] if isinstance(t, tuple) else None, None, i)
                  for i, t in enumerate(texts)], tok, max_length)
    if not head_inputs:
        logits = predict(lambda b: m(**model_inputs(b)).logits, enc, device=dev)
        return torch.from_numpy(logits).float(), m, enc, None
    head = _classifier_layer(m)
    seen: list = []
    hook = head.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))

    def both(b):  # [B, C + D]: logits and the classifier's input, in one pass
        seen.clear()
        z = m(**model_inputs(b)).logits
        return torch.cat([z, seen[-1].reshape(len(z), -1)], -1)

    try:
        out = torch.from_numpy(predict(both, enc, device=dev)).float()
    finally:
        hook.remove()
    c = m.config.num_labels
    return out[:, :c], m, enc, out[:, c:]


def _classifier_layer(model) -> torch.nn.Linear:
    """The linear layer that makes a classifier's logits (BERT's ``classifier``, the last
    ``nn.Linear`` with ``num_labels`` outputs otherwise)."""
    head = getattr(model, "classifier", None)
    if isinstance(head, torch.nn.Linear):
        return head
    lin = [x for x in model.modules() if isinstance(x, torch.nn.Linear)
           and x.out_features == model.config.num_labels]
    if not lin:
        raise ConfigError("l2a.reward=influence needs a student whose logits come from a "
                          "linear layer")
    return lin[-1]


def _where(res: dict) -> dict:
    """Where a round's student trained and its teacher ran (from its distill result), and
    where the round's feature passes ran."""
    return {"device": res["device"], "teacher_devices": res.get("teacher_devices"),
            "feature_device": str(_device())}


def _save_selector(sel: Selector, path: Path) -> None:
    """The policy, its feature statistics, baseline and optimizer moments (so the next round
    continues the same REINFORCE run rather than restarting Adam)."""
    opt = sel.opt.state_dict()
    path.write_text(json.dumps({
        "weight": sel.linear.weight.detach().tolist(), "bias": sel.linear.bias.detach().tolist(),
        "mean": sel.mean.tolist(), "var": sel.var.tolist(), "seen": sel.seen,
        "baseline": sel.baseline,
        "opt_state": {str(k): {n: (v.tolist() if torch.is_tensor(v) else v)
                               for n, v in st.items()} for k, st in opt["state"].items()}}))


def _load_selector(sel: Selector, path: Path) -> None:
    d = json.loads(path.read_text())
    with torch.no_grad():
        sel.linear.weight.copy_(torch.tensor(d["weight"]))
        sel.linear.bias.copy_(torch.tensor(d["bias"]))
    sel.mean, sel.var = torch.tensor(d["mean"]), torch.tensor(d["var"])
    sel.seen, sel.baseline = d["seen"], d["baseline"] or 0.0
    opt = sel.opt.state_dict()
    opt["state"] = {int(k): {n: torch.tensor(v) for n, v in st.items()}
                    for k, st in d["opt_state"].items()}
    sel.opt.load_state_dict(opt)


def l2a(cfg: C.L2AConfig, resume: bool = False) -> dict:
    from accelerate.utils import set_seed

    from ..kd.run import distill

    t0 = time.time()
    s = cfg.l2a
    if not s.mlm:
        raise ConfigError("L2A needs a masked LM for its generator: set l2a.mlm (--mlm)")
    target = get_task(cfg.data.task, data_dir=cfg.data.data_dir)
    source = get_task(s.source_task, data_dir=cfg.data.data_dir)
    if target.is_regression or source.label_names != target.label_names:
        raise ConfigError(f"source '{source.name}' and target '{target.name}' must be "
                          "classification tasks with the same labels")
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    C.save(cfg, out / "config.yaml")
    set_seed(cfg.train.seed)
    rows = target.load(cfg.data.train_split, limit=cfg.data.limit, seed=cfg.train.seed)
    rng = random.Random(cfg.train.seed)
    if s.target_fraction < 1:
        rows = sorted(rng.sample(rows, max(4, int(round(len(rows) * s.target_fraction)))),
                      key=lambda e: e.idx)
    held = set(rng.sample(range(len(rows)), max(2, int(round(len(rows) * s.reward_share)))))
    fit = [e for i, e in enumerate(rows) if i not in held]
    reward_rows = [e for i, e in enumerate(rows) if i in held]
    src_rows = source.load(cfg.data.train_split, limit=s.source_limit, seed=cfg.train.seed)
    primary = target.primary_metric

    state: dict = {}

    def teacher_stage(ctx):
        from ..finetune import SupervisedObjective
        from ...train.loop import make_accelerator

        tok = hub.load_tokenizer(s.teacher_base)
        model = hub.load_classifier(s.teacher_base, target.num_labels, target.label_names)
        train = encode(src_rows + fit, tok, cfg.data.max_length)
        dev = encode(reward_rows, tok, cfg.data.max_length)
        tcfg = C.FinetuneConfig(output_dir=str(ctx.dir), data=cfg.data, train=cfg.teacher_train,
                                model=C.ModelConfig(name=s.teacher_base))
        res = runner.run_training(SupervisedObjective(model, False, tok), target, train, dev,
                                  tcfg, ctx.resume, make_accelerator(), t0,
                                  {"rows": len(train)})
        return {**res, "model": str(ctx.dir / "model")}

    def teacher_ref(ctx) -> str:
        return cfg.teacher.name or ctx.results["teacher"]["model"]

    def generator_stage(ctx):
        """The generator's masked LM trained on the source and available target texts (never
        the reward rows): ``generator_steps`` steps, whole model, 64-token blocks."""
        from ..mlm.run import finetune_mlm

        text = ctx.dir / "text.txt"
        text.write_text("".join(" ".join(t for t in (e.text_a, e.text_b) if t) + "\n"
                                for e in src_rows + fit), encoding="utf-8")
        n = s.generator_steps
        gcfg = C.FinetuneConfig(
            output_dir=str(ctx.dir), model=C.ModelConfig(name=s.mlm),
            data=C.DataConfig(task=f"mlm:{text}", mlm_block_size=64,
                              data_dir=cfg.data.data_dir),
            train=C.TrainConfig(lr=s.generator_lr, epochs=1, max_steps=n, min_steps=n,
                                batch_size=32, warmup_ratio=0.05, seed=cfg.train.seed,
                                eval_every=max(1, n // 2), num_threads=cfg.train.num_threads,
                                progress=cfg.train.progress,
                                mixed_precision=cfg.train.mixed_precision))
        res = finetune_mlm(gcfg, ctx.resume)
        return {**res, "model": str(ctx.dir / "model"), "text_rows": len(src_rows) + len(fit)}

    def mlm_ref(ctx) -> str:
        return ctx.results["generator"]["model"] if s.generator_steps else s.mlm

    def pool(ctx, r: int):
        """Round ``r``'s generated candidates: the same for ``l2a``, ``random`` and
        ``generated-all`` (same generator, rows and seed)."""
        gen = Generator(mlm_ref(ctx), s.chain_length, s.mask_share, s.source_mix)
        return gen(_texts(fit), _texts(src_rows), s.candidates, seed=cfg.train.seed + r)

    def student_run(ctx, base: str | None, extra: list) -> dict:
        student = (cfg.student if base is None else
                   C.StudentConfig(kind="pretrained", base=base))
        dcfg = C.DistillConfig(output_dir=str(ctx.dir), data=cfg.data, kd=cfg.kd,
                               student=student, train=cfg.train,
                               teacher=cfg.teacher.model_copy(update={"name": teacher_ref(ctx)}))
        res = distill(dcfg, resume=ctx.resume, train_examples=fit,
                      extra_texts=extra or None, eval_examples=reward_rows)
        return {**res, "model": str(ctx.dir / "model")}

    def round_stage(r: int):
        def run(ctx):
            if r == 0:
                res = student_run(ctx, None, [])
                return {"round": 0, "metric": res[primary], "kept_total": 0, "reward": None,
                        "model": res["model"], "kept_texts": [], **_where(res)}
            prev = ctx.results[f"round-{r - 1:02d}"]
            sel = Selector(len(FEATURES), lr=s.selector_lr, seed=cfg.train.seed + r)
            if r > 1:
                _load_selector(sel, ctx.dir_of(f"round-{r - 1:02d}") / SELECTOR_FILE)
            cands = pool(ctx, r)
            texts = [c.text for c in cands]
            t_logits, t_model, enc, _ = _logits(teacher_ref(ctx), texts, cfg.data.max_length)
            influence_on = s.reward == "influence"
            held = _texts(reward_rows) if influence_on else []
            # one student pass over the candidates (and, for the influence reward, the held-out
            # rows), with its classifier's inputs when the reward needs them
            z_s, _, _, h_s = _logits(prev["model"], texts + held, cfg.data.max_length,
                                     influence_on)
            s_logits = z_s[:len(texts)]
            emb = pooled_hidden_states(t_model, enc, layers=[-1])[:, 0]
            if "centroid" not in state:  # the target rows' mean embedding: once per run
                tok = hub.load_tokenizer(teacher_ref(ctx))
                state["centroid"] = pooled_hidden_states(
                    t_model, encode(fit, tok, cfg.data.max_length), layers=[-1])[:, 0].mean(0)
            centroid = state["centroid"]
            feats = candidate_features(t_logits, s_logits, emb, centroid,
                                       torch.tensor([c.origin == "source" for c in cands]))
            fitted, influence = None, None
            if influence_on:  # every candidate's own reward, before acting
                n = len(texts)
                influence = influence_rewards(
                    h_s[:n], s_logits.softmax(-1), t_logits.softmax(-1), h_s[n:],
                    z_s[n:].softmax(-1), torch.tensor([e.label for e in reward_rows]))
                fitted = sel.fit_rewards(feats, influence, s.selector_steps)
            actions = sel.act(feats, update_stats=fitted is None)
            kept = [t for t, a in zip(texts, actions.tolist()) if a > 0]
            extra = [tuple(t) if isinstance(t, list) else t for t in prev["kept_texts"]] + kept
            res = student_run(ctx, prev["model"], extra)
            reward = res[primary] - prev["metric"]
            upd = fitted if fitted is not None else sel.update(feats, actions, reward)
            if influence is not None:
                upd["features"] = list(FEATURES)
                k = actions > 0
                upd["influence_kept"] = float(influence[k].mean()) if k.any() else None
                upd["influence_dropped"] = float(influence[~k].mean()) if (~k).any() else None
            _save_selector(sel, ctx.dir / SELECTOR_FILE)
            return {"round": r, "metric": res[primary], "reward": reward, **_where(res),
                    "kept": int(actions.sum()), "candidates": len(cands),
                    "pool_digest": _digest(texts),
                    "kept_fraction": float(actions.mean()), "kept_total": len(extra),
                    "kept_from_source": int(sum(a > 0 and c.origin == "source"
                                                for a, c in zip(actions.tolist(), cands))),
                    "selector": upd, "model": res["model"], "kept_texts": extra}
        return run

    def baseline_round(r: int):
        """A baseline's round (no selection): its share of ``augment_samples`` rows
        (``generated-all``: the whole pool), teacher-labelled, added to the earlier rounds'
        ones; the previous round's student distilled on the target rows plus all of them."""
        def run(ctx):
            from ...augment.run import augment_rows, make_augmenter

            prev = ctx.results[f"round-{r - 1:02d}"]
            n = s.augment_samples or s.rounds * s.candidates
            share = n * r // s.rounds - n * (r - 1) // s.rounds  # sums to n over the rounds
            seed = cfg.train.seed + r
            new: list = []
            digest = None
            if s.augmenter in ("random", "generated-all"):
                texts = [c.text for c in pool(ctx, r)]
                digest = _digest(texts)
                new = (texts if s.augmenter == "generated-all" else
                       random.Random(seed).sample(texts, min(share, len(texts))))
            elif s.augmenter == "source":  # consecutive slices of one seeded order: no repeats
                order = random.Random(cfg.train.seed).sample(_texts(src_rows), len(src_rows))
                new = order[n * (r - 1) // s.rounds:][:share]
            elif s.augmenter != "none" and share:
                aug = make_augmenter(s.augmenter, cfg.data.data_dir, -(-share // len(fit)),
                                     mlm_ref(ctx))
                made = augment_rows(aug, _texts(fit), seed, [e.label for e in fit])
                new = [t for _, t in random.Random(seed).sample(made, min(share, len(made)))]
            extra = [tuple(t) if isinstance(t, list) else t for t in prev["kept_texts"]] + new
            res = student_run(ctx, prev["model"], extra)
            return {"round": r, "metric": res[primary], "reward": res[primary] - prev["metric"],
                    **_where(res), "pool_digest": digest,
                    "kept": len(new), "kept_total": len(extra), "model": res["model"],
                    "augmenter": s.augmenter, "kept_texts": extra}
        return run

    stages = ([] if cfg.teacher.name else [Stage("teacher", teacher_stage)])
    if s.generator_steps:
        stages.append(Stage("generator", generator_stage))
    names = [f"round-{r:02d}" for r in range(s.rounds + 1)]
    # a baseline runs in the same pipeline and rounds: same rows, teacher, round-0 student
    later = round_stage if s.augmenter == "l2a" else baseline_round
    stages += [Stage(nm, round_stage(0) if r == 0 else later(r)) for r, nm in enumerate(names)]
    results = Pipeline(stages, out, print if cfg.train.progress else None).run(resume=resume)
    last = results[names[-1]]
    final = api_evaluate(last["model"], cfg)
    curve = [{k: results[nm].get(k) for k in
              ("round", "metric", "reward", "kept_fraction", "kept_total", "selector")} for nm in names]
    summary = {"task": target.name, "source": source.name, "primary": primary,
               "augmenter": s.augmenter, "kept_total": last.get("kept_total", 0),
               "target_rows": len(fit), "reward_rows": len(reward_rows),
               "final": final, "rounds": curve, "model_dir": last["model"],
               "generator": ({k: results["generator"].get(k) for k in
                              ("mlm_accuracy", "mlm_loss", "steps", "text_rows",
                               "heldout_blocks", "model")} if s.generator_steps else None),
               "wall_seconds": round(time.time() - t0, 1)}
    from ...report.l2a import write_l2a_report

    return runner.finish_pipeline(out, summary, write_l2a_report)


def _digest(texts) -> str:
    """A short fingerprint of a round's candidate pool (rows of one comparison share it)."""
    return hashlib.sha1(json.dumps(texts).encode()).hexdigest()[:16]


def api_evaluate(model_dir: str, cfg: C.L2AConfig) -> dict:
    """The final student on the target's eval split (never seen by the rounds)."""
    from ..finetune import model_inputs

    task = get_task(cfg.data.task, data_dir=cfg.data.data_dir)
    tok = hub.load_tokenizer(model_dir)
    dev = _device()
    m = hub.load_classifier(model_dir, task.num_labels).eval().to(dev)
    enc = runner.load_encoded(task, cfg.data.eval_split, tok, cfg.data.max_length,
                              cfg.data.eval_limit)
    logits = predict(lambda b: m(**model_inputs(b)).logits, enc, device=dev)
    return runner.task_metrics(task, logits, enc)
