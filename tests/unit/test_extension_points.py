"""The extension points methods are built on (issue 8): several optimizers and a custom step
over two data streams, a collate hook, checkpoints of every optimizer, stage pipelines that
resume, per-example extras and instance weights, token-level predictions, grouped metrics and
the public task registry. Toy objectives on hand-made token ids: fast, and every assertion is
about what the loop did."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lmdistill import config as C
from lmdistill.data import tasks as TK
from lmdistill.data.collate import Encoded, collate, encode
from lmdistill.data.metrics import compute, group_accuracy
from lmdistill.errors import ConfigError, DataError
from lmdistill.methods.finetune import supervised_loss
from lmdistill.train.callbacks import Callback
from lmdistill.train.loop import Trainer, make_optimizer
from lmdistill.train.pipeline import Pipeline, Stage
from lmdistill.train.predict import predict


def toy_data(n: int = 40, seed: int = 0) -> Encoded:
    g = np.random.default_rng(seed)
    ids = [list(g.integers(1, 20, size=int(g.integers(3, 9)))) for _ in range(n)]
    labels = [int(sum(x) % 2) for x in ids]
    return Encoded(ids, None, labels, list(range(n)), [("t", None)] * n, 0)


class Toy(torch.nn.Module):
    """Mean-pooled embeddings -> linear head."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.emb = torch.nn.Embedding(20, 8)
        self.head = torch.nn.Linear(8, 2)

    def logits(self, batch):
        m = batch["attention_mask"].unsqueeze(-1).float()
        return self.head((self.emb(batch["input_ids"]) * m).sum(1) / m.sum(1))

    def forward(self, batch):
        return {"loss": supervised_loss(self.logits(batch), batch["labels"], False,
                                        batch.get("weight"))}

    def predict(self, batch):
        return self.logits(batch)

    def save_pretrained(self, out):
        from pathlib import Path

        Path(out).mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), Path(out) / "w.pt")


class Alternating(Toy):
    """AdaBERT-shaped: two parameter groups with their own optimizers; even steps train the
    embeddings on the train stream, odd steps the head on a held-out stream; the collate hook
    marks every batch it built."""

    def __init__(self, heldout: Encoded, seed=0):
        super().__init__(seed)
        self.heldout = heldout
        self.seen = {"train": 0, "heldout": 0}
        self.marked = 0

    def streams(self):
        return {"heldout": self.heldout}

    def collate(self, enc, idx):
        b = collate(enc, idx)
        b["marked"] = torch.ones(len(idx))
        return b

    def configure_optimizers(self, cfg, total_steps):
        return {"weights": make_optimizer(self.emb.named_parameters(), cfg, total_steps),
                "arch": (torch.optim.Adam(self.head.parameters(), lr=0.05), None)}

    def training_step(self, trainer, group):
        if trainer.state.step % 2 == 0:
            batch, which, opt = trainer.batch(group[0]), "train", "weights"
        else:
            batch, which, opt = trainer.next_batch("heldout"), "heldout", "arch"
        self.marked += int(batch["marked"].sum())
        self.seen[which] += 1
        loss = trainer.model(batch)["loss"]
        trainer.backward(loss)
        trainer.step_optimizer(opt)
        return {"loss": loss.detach(), f"loss_{which}": loss.detach()}


def cfg(**over):
    base = {"batch_size": 8, "epochs": 2, "lr": 0.05, "log_every": 1, "progress": False,
            "warmup_ratio": 0.0}
    base.update(over)
    return C.TrainConfig(**base)


def test_two_optimizers_alternate_on_two_streams(tmp_path):
    train, held = toy_data(40, 0), toy_data(24, 1)
    obj = Alternating(held)
    emb0, head0 = obj.emb.weight.clone(), obj.head.weight.clone()
    tr = Trainer(obj, train, cfg(), tmp_path)
    fit = tr.fit()
    assert fit["step"] == 10
    assert obj.seen == {"train": 5, "heldout": 5}
    assert not torch.equal(obj.emb.weight, emb0) and not torch.equal(obj.head.weight, head0)
    assert obj.marked == 5 * 8 + 5 * 8  # the collate hook built every batch
    assert tr.state.streams["heldout"] == [1, 2]  # 3 held-out batches per epoch: epoch 1, pos 2
    ck = sorted((tmp_path / "checkpoints").iterdir())[-1]
    opt = torch.load(ck / "optimizer.pt", weights_only=True)
    assert set(opt) == {"weights", "arch"}
    assert set(torch.load(ck / "scheduler.pt", weights_only=True)) == {"weights"}


def test_alternating_run_resumes_to_the_same_weights(tmp_path):
    """Both optimizers' states and the held-out stream's position come back from the
    checkpoint: resumed from step 4, the run ends where the uninterrupted one did."""
    train, held = toy_data(40, 0), toy_data(24, 1)
    ref = Alternating(held)
    Trainer(ref, train, cfg(save_every=2, keep_checkpoints=10), tmp_path / "a").fit()
    run = Alternating(held)
    Trainer(run, train, cfg(save_every=2, keep_checkpoints=10), tmp_path / "b").fit()
    import shutil

    for c in sorted((tmp_path / "b" / "checkpoints").iterdir())[2:]:  # keep steps 2 and 4
        shutil.rmtree(c)
    resumed = Alternating(held, seed=5)  # other initial weights: all must come from the ckpt
    tr = Trainer(resumed, train, cfg(save_every=2, keep_checkpoints=10), tmp_path / "b",
                 resume=True)
    tr.fit()
    assert resumed.seen == {"train": 3, "heldout": 3}  # steps 5..10 only
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, atol=0, rtol=0)


def test_min_steps_raises_the_run_length_of_a_small_set_only(tmp_path):
    """40 rows at batch 8 are 5 steps an epoch: 2 epochs = 10 steps; min_steps 23 trains 23
    (into a fifth epoch), min_steps 4 changes nothing, and max_steps still wins."""
    def steps(name, **over):
        return Trainer(Toy(), toy_data(40), cfg(**over), tmp_path / name).fit()["step"]

    assert steps("a") == 10
    assert steps("b", min_steps=23) == 23
    assert steps("c", min_steps=4) == 10
    assert steps("d", min_steps=23, max_steps=7) == 7


def test_custom_step_without_loss_is_refused(tmp_path):
    class NoLoss(Toy):
        def training_step(self, trainer, group):
            return {"x": 1.0}

    with pytest.raises(ConfigError, match="'loss'"):
        Trainer(NoLoss(), toy_data(), cfg(), tmp_path).fit()


# ------------------------------------------------------------------ pipelines
class KillAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, logs):
        if trainer.state.step == self.step:
            raise KeyboardInterrupt


def _pipeline(root, calls, kill_at=None):
    train = toy_data(40, 0)

    def stage1(ctx):
        calls.append("one")
        obj = Toy(seed=1)
        Trainer(obj, train, cfg(save_every=1), ctx.dir, resume=ctx.resume).fit()
        obj.save_pretrained(ctx.dir / "model")
        return {"head_sum": float(obj.head.weight.detach().sum())}

    def stage2(ctx):
        calls.append("two")
        obj = Toy(seed=2)
        obj.load_state_dict(torch.load(ctx.dir_of("one") / "model" / "w.pt"))
        cbs = [KillAt(kill_at)] if kill_at else []
        Trainer(obj, train, cfg(save_every=1, lr=0.01), ctx.dir, callbacks=cbs,
                resume=ctx.resume).fit()
        obj.save_pretrained(ctx.dir / "model")
        return {"from": ctx.results["one"]["head_sum"]}

    return Pipeline([Stage("one", stage1), Stage("two", stage2)], root, progress=None)


def test_pipeline_resumes_after_a_kill_in_stage_two(tmp_path):
    calls = []
    ref = _pipeline(tmp_path / "ref", calls).run()
    assert calls == ["one", "two"] and ref["two"]["from"] == ref["one"]["head_sum"]
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        _pipeline(tmp_path / "p", calls, kill_at=3).run()
    p = _pipeline(tmp_path / "p", calls)
    assert p.status() == {"one": "done", "two": "started"}
    # a finished stage's checkpoints are gone (its model stays); the killed one keeps its own
    assert not (tmp_path / "p/stages/00-one/checkpoints").exists()
    assert (tmp_path / "p/stages/00-one/model/w.pt").exists()
    assert any((tmp_path / "p/stages/01-two/checkpoints").iterdir())
    with pytest.raises(ConfigError, match="--resume"):
        p.run()
    calls.clear()
    res = p.run(resume=True)
    assert calls == ["two"]  # stage one is not run again
    assert res == ref
    a = torch.load(tmp_path / "ref/stages/01-two/model/w.pt")
    b = torch.load(tmp_path / "p/stages/01-two/model/w.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert json.loads((tmp_path / "p/stages/00-one/stage.json").read_text())["index"] == 0
    assert not (tmp_path / "p/stages/01-two/checkpoints").exists()
    kept = Pipeline(_pipeline(tmp_path / "k", []).stages, tmp_path / "k", progress=None,
                    keep_checkpoints=True)
    kept.run()
    assert any((tmp_path / "k/stages/00-one/checkpoints").iterdir())


def test_pipeline_rejects_duplicate_stage_names(tmp_path):
    with pytest.raises(ConfigError, match="unique"):
        Pipeline([Stage("a", dict), Stage("a", dict)], tmp_path)


# ------------------------------------------------------------------ extras and instance weights
def test_extras_flow_from_examples_to_batches(tiny_bert):
    from lmdistill.models import hub

    tok = hub.load_tokenizer(str(tiny_bert))
    ex = [TK.Example("a good film", None, 1, 0, meta={"domain": 2, "weight": 0.5}),
          TK.Example("bad", None, 0, 1, meta={"domain": 0, "weight": 2.0})]
    enc = encode(ex, tok, 16)
    b = collate(enc, [1, 0])
    assert b["domain"].tolist() == [0, 2] and b["domain"].dtype == torch.long
    assert b["weight"].tolist() == [2.0, 0.5] and b["weight"].dtype == torch.float
    sub = enc.subset([1])
    assert sub.extras == {"domain": [0], "weight": [2.0]}
    with pytest.raises(DataError, match="missing for 1 examples"):
        encode([ex[0], TK.Example("x", None, 0, 5)], tok, 16)
    with pytest.raises(DataError, match="reserved"):
        enc.add_extra("labels", [0, 1])
    enc.add_extra("group", [7, 7])
    assert collate(enc, [0, 1])["group"].tolist() == [7, 7]


@pytest.mark.parametrize("regression", [False, True])
def test_instance_weights_scale_each_rows_gradient(regression):
    """Two identical rows with weights 1 and 3: their gradients are in ratio 1:3 (the loss is
    weighted per row before the reduction, for the supervised loss as for KD)."""
    logits = torch.tensor([[0.3, -0.2], [0.3, -0.2]], requires_grad=True)
    if regression:
        logits = torch.tensor([[0.3], [0.3]], requires_grad=True)
        labels = torch.tensor([1.0, 1.0])
    else:
        labels = torch.tensor([0, 0])
    loss = supervised_loss(logits, labels, regression, torch.tensor([1.0, 3.0]))
    loss.backward()
    g = logits.grad
    torch.testing.assert_close(g[1], 3 * g[0])
    # and uniform weights give the unweighted loss back
    same = supervised_loss(logits.detach(), labels, regression, torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(same, supervised_loss(logits.detach(), labels, regression))


def test_kd_objective_weights_every_term_per_row(tiny_bert):
    from lmdistill import teachers as T
    from lmdistill.mapping import Projections, build_matches
    from lmdistill.methods.kd.objective import KDObjective, needs_of
    from lmdistill.models import hub

    tok = hub.load_tokenizer(str(tiny_bert))
    ex = [TK.Example("the same sentence twice", None, 1, i, meta={"weight": w})
          for i, w in enumerate((1.0, 3.0))]
    enc = encode(ex, tok, 16)
    torch.manual_seed(0)
    teacher = hub.load_classifier(str(tiny_bert), 2)
    student = hub.load_classifier(str(tiny_bert), 2)
    with torch.no_grad():  # a student that differs from its teacher in every layer
        for p in student.parameters():
            p.add_(0.05 * torch.randn_like(p))
    matches = build_matches([(1, 1)], ["hidden"])
    sig = T.OnlineTeacher(teacher, needs_of(matches))
    obj = KDObjective(student, sig, matches, Projections(matches, 32, 32), alpha=0.5,
                      temperature=2.0)
    grads = {}
    def keep_grad(_mod, _inp, out):
        out.register_hook(lambda g: grads.setdefault("logits", g))

    def keep_hidden_grad(_mod, _inp, out):
        h = out[0] if isinstance(out, tuple) else out
        h.register_hook(lambda g: grads.setdefault("hidden1", g))

    hs = [student.classifier.register_forward_hook(keep_grad),
          student.bert.encoder.layer[0].register_forward_hook(keep_hidden_grad)]
    out = obj(collate(enc, [0, 1]))
    out["loss"].backward()
    for h in hs:
        h.remove()
    torch.testing.assert_close(grads["logits"][1], 3 * grads["logits"][0])
    # layer 1's output gets the hidden-MSE term and everything above it: also 1:3
    torch.testing.assert_close(grads["hidden1"][1], 3 * grads["hidden1"][0])
    assert out["hard"] > 0 and out["soft"] >= 0 and out["inter"] > 0


# ------------------------------------------------------------------ token-level predict
def test_predict_token_level_outputs_come_back_per_example():
    enc = toy_data(11)

    def fn(batch):  # [B, L, 3]: position index, then the token id, then 1
        ids = batch["input_ids"].float()
        pos = torch.arange(ids.shape[1]).expand_as(ids).float()
        return torch.stack([pos, ids, torch.ones_like(ids)], -1)

    out = predict(fn, enc, batch_size=4)
    assert out.dtype == object and len(out) == 11
    for i in range(11):
        assert out[i].shape == (enc.lengths[i], 3)
        assert out[i][:, 1].tolist() == enc.input_ids[i]
        assert out[i][:, 0].tolist() == list(range(enc.lengths[i]))
    # [B, C] outputs are stacked as before
    assert predict(lambda b: torch.zeros(len(b["index"]), 2), enc, 4).shape == (11, 2)


# ------------------------------------------------------------------ grouped metrics, registry
def test_group_accuracy_hand_made():
    # group 0: rows 0-2, best row 1 (gold) -> right; group 1: rows 3-4, best 3 (not gold) ->
    # wrong; group 2: two gold keys, best row 6 is one of them -> right
    scores = [0.1, 0.9, 0.3, 0.8, 0.2, 0.1, 0.7]
    labels = [0, 1, 0, 0, 1, 1, 1]
    groups = [0, 0, 0, 1, 1, 2, 2]
    assert group_accuracy(scores, labels, groups) == pytest.approx(2 / 3)
    assert group_accuracy([0.5, 0.5], [0, 1], [4, 4]) == 0.0  # tie: the first row
    with pytest.raises(DataError, match="needs a 'group'"):
        compute(["group_accuracy"], [1, 0], [1, 0])
    out = compute(["group_accuracy", "accuracy"], [0, 1, 0, 0, 0, 0, 1], labels, groups, scores)
    assert out["group_accuracy"] == pytest.approx(2 / 3) and out["accuracy"] == pytest.approx(5 / 7)


def test_register_task_and_grouped_evaluation(tmp_path):
    from lmdistill import api

    rows = [("context one", "sense a", 1), ("context one", "sense b", 0),
            ("context two", "sense c", 0), ("context two", "sense d", 1)]
    task = TK.Task.from_examples("toy-wsd", {"train": rows, "dev": rows}, ["no", "yes"],
                                 metrics=["group_accuracy"])
    TK.register_task("toy-wsd", task, aliases=["toywsd"])
    try:
        assert TK.get_task("ToyWSD", data_dir=None) is task
        with pytest.raises(DataError, match="already registered"):
            TK.register_task("toy-wsd", task)
        enc_rows = task.load("dev")
        from lmdistill.models import hub

        tok = hub.load_tokenizer("minilm-l6")
        enc = encode(enc_rows, tok, 16)
        enc.add_extra("group", [0, 0, 1, 1])
        logits = np.array([[0.0, 2.0], [0.0, 1.0], [0.0, 0.5], [0.0, 3.0]])
        m = api.task_metrics(task, logits, enc)
        assert m == {"group_accuracy": 1.0}
        logits[1, 1] = 5.0  # group 0 now picks the wrong sense
        assert api.task_metrics(task, logits, enc) == {"group_accuracy": 0.5}
    finally:
        TK.unregister_task("toy-wsd")
    with pytest.raises(DataError, match="unknown task"):
        TK.get_task("toy-wsd")
