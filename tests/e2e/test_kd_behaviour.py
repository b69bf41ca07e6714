"""Tests that KD does what it claims, end to end on real SST-2 rows (issue 8): each could fail
if the behaviour were wrong, none compares the code with itself."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lmdistill import api
from lmdistill import config as C
from lmdistill import teachers as T
from lmdistill.data.collate import collate, encode
from lmdistill.data.tasks import Example, get_task
from lmdistill.errors import ConfigError
from lmdistill.methods.kd.run import distill
from lmdistill.models import hub

MAX_LEN = 32


@pytest.fixture(scope="module")
def teacher(tiny_bert, tmp_path_factory):
    out = tmp_path_factory.mktemp("kdb-teacher")
    api.finetune(C.build(C.FinetuneConfig, overrides={
        "output_dir": str(out), "model.name": str(tiny_bert), "data.task": "sst2",
        "data.limit": 512, "data.eval_limit": 64, "data.max_length": MAX_LEN,
        "train.batch_size": 32, "train.epochs": 2, "train.lr": 2e-3, "train.progress": False,
        "train.num_threads": 1}))
    return out / "model"


def dcfg(teacher, out, **over):
    base = {"output_dir": str(out), "teacher.name": str(teacher),
            "teacher.cache_dir": str(out.parent / "cache"), "data.task": "sst2",
            "data.limit": 256, "data.eval_limit": 64, "data.max_length": MAX_LEN,
            "student.num_layers": 1, "train.batch_size": 16, "train.epochs": 2,
            "train.lr": 1e-3, "train.log_every": 1, "train.progress": False,
            "train.num_threads": 1, "train.eval_every": None}
    base.update(over)
    return C.build(C.DistillConfig, overrides=base)


def kl_to_teacher(teacher, student, n: int = 200, seed: int = 3) -> float:
    """Mean KL(p_teacher || p_student) on held-out rows (SST-2 dev, not trained on)."""
    tok = hub.load_tokenizer(str(teacher))
    enc = encode(get_task("sst2").load("dev", limit=n, seed=seed), tok, MAX_LEN)
    t = hub.load_classifier(str(teacher)).eval()
    s = hub.load_classifier(str(student)).eval()
    b = collate(enc, list(range(len(enc))), with_labels=False)
    x = {k: b[k] for k in T.MODEL_INPUTS if k in b}
    with torch.no_grad():
        pt, ls = t(**x).logits.softmax(-1), s(**x).logits.log_softmax(-1)
    return float((pt * (pt.log() - ls)).sum(-1).mean())


def test_logit_kd_brings_the_student_closer_to_the_teacher_than_no_kd(teacher, tmp_path):
    """Same student, same rows, same steps: α=1 (pure KD) vs α=0 (gold labels only). On rows
    neither saw, the KD student's predictions are closer to the teacher's."""
    kd = distill(dcfg(teacher, tmp_path / "kd", **{"kd.alpha": 1.0, "kd.temperature": 2.0}))
    nokd = distill(dcfg(teacher, tmp_path / "nokd", **{"kd.alpha": 0.0}))
    assert kd["steps"] == nokd["steps"] == 32
    kl_kd = kl_to_teacher(teacher, tmp_path / "kd" / "model")
    kl_no = kl_to_teacher(teacher, tmp_path / "nokd" / "model")
    assert kl_kd < 0.7 * kl_no, (kl_kd, kl_no)
    # the run's own diagnosis says the same on its eval rows (64 dev rows, seed 0): the logged
    # KL of the saved (best) student is the one computed here from the saved models
    for res, run in ((kd, "kd"), (nokd, "nokd")):
        assert res["kl_to_teacher"] == pytest.approx(
            kl_to_teacher(teacher, tmp_path / run / "model", 64, 0), rel=1e-3, abs=1e-5)
    assert kd["kl_to_teacher"] < nokd["kl_to_teacher"]
    assert kd["teacher_agreement"] >= nokd["teacher_agreement"]
    assert set(kd["teacher_dev"]) == {"accuracy"}
    rel = kd["teacher_calibration"]["reliability"]
    assert sum(b["rows"] for b in rel) == 64 and all(0.5 <= b["confidence"] <= 1 for b in rel)
    with_ref = api.distill(dcfg(teacher, tmp_path / "ref", **{  # api: it writes the report
        "kd.reference": str(tmp_path / "nokd"), "train.max_steps": 1}))
    assert with_ref["nokd_reference"]["value"] == nokd["accuracy"]
    md = (tmp_path / "ref" / "report.md").read_text()
    assert "## Did distillation help?" in md and "without KD" in md
    assert (tmp_path / "ref" / "reliability_ref.png").stat().st_size > 1000
    with pytest.raises(ConfigError, match="no metrics.json"):
        distill(dcfg(teacher, tmp_path / "ref2", **{"kd.reference": str(tmp_path / "nope")}))


def test_a_headless_student_starts_from_the_teachers_head(teacher, tiny_bert, tmp_path):
    """A student built from the pretrained (headless) encoder takes the teacher's pooler and
    classifier: before any update its head is the teacher's; with head_init=random it is not."""
    over = {"student.base": str(tiny_bert), "train.max_steps": 1, "train.lr": 1e-12}
    res = distill(dcfg(teacher, tmp_path / "t", **over))
    assert res["head_from_teacher"] == 4  # pooler weight/bias, classifier weight/bias
    t = hub.load_classifier(str(teacher))
    s = hub.load_classifier(str(tmp_path / "t" / "model"))
    assert torch.allclose(s.classifier.weight, t.classifier.weight, atol=1e-6)
    rnd = distill(dcfg(teacher, tmp_path / "r", **over, **{"student.head_init": "random"}))
    assert rnd["head_from_teacher"] == 0
    r = hub.load_classifier(str(tmp_path / "r" / "model"))
    assert not torch.allclose(r.classifier.weight, t.classifier.weight, atol=1e-3)


def test_gold_weighting_silences_an_always_wrong_teacher(teacher, tmp_path):
    """A second teacher that is confidently wrong on every training row (a logits file): under
    `gold` its weight goes to ~0 on every batch, end to end; under `confidence` it would not."""
    task = get_task("sst2")
    n = len(task.load("train"))
    labels = np.array([e.label for e in task.load("train")])
    wrong = np.zeros((n, 2), dtype=np.float32)
    wrong[np.arange(n), 1 - labels] = 10.0
    np.save(tmp_path / "wrong.npy", wrong)
    over = {"teacher.logits_file": str(tmp_path / "wrong.npy"), "train.epochs": 1}
    distill(dcfg(teacher, tmp_path / "gold", **over, **{"teacher.strategy": "gold"}))
    distill(dcfg(teacher, tmp_path / "conf", **over, **{"teacher.strategy": "confidence"}))

    def weights(run):
        recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return [r["w_teacher1"] for r in recs if r["type"] == "train"]

    gold, conf = weights(tmp_path / "gold"), weights(tmp_path / "conf")
    assert len(gold) == 16 and max(gold) < 1e-3
    assert min(conf) > 0.5  # the wrong teacher is the more confident one


def test_unlabelled_rows_get_the_soft_loss_and_never_the_hard_one(teacher, tmp_path):
    """Rows added through extra_texts have no gold label: their hard-loss gradient is exactly
    zero, their soft-loss gradient is not; a batch of only such rows works under gold
    weighting (it used to raise: collate drops `labels` for such a batch)."""
    from lmdistill.methods.kd.objective import KDObjective

    tok = hub.load_tokenizer(str(teacher))
    rows = get_task("sst2").load("train", limit=4, seed=0)
    extra = [Example("an unlabelled sentence", None, None, -1),
             Example("another one , a little longer", None, None, -2)]
    enc = encode(rows + extra, tok, MAX_LEN)
    t_model = hub.load_classifier(str(teacher))
    student = hub.load_classifier(str(teacher))
    sig = T.CachedTeacher(t_model, enc, cache_dir=tmp_path / "c", progress=False)
    batch = collate(enc, list(range(6)))
    assert batch["labels"][4:].tolist() == [-100, -100]
    for alpha, expect_zero in ((0.0, True), (1.0, False)):
        obj = KDObjective(student, sig, alpha=alpha, temperature=2.0)
        grads = {}

        def keep(_m, _i, out):
            out.register_hook(lambda g: grads.setdefault("g", g))

        h = student.classifier.register_forward_hook(keep)
        obj(batch)["loss"].backward()
        h.remove()
        g = grads["g"]
        assert g[:4].abs().sum() > 0
        assert (g[4:].abs().sum() == 0) == expect_zero, alpha
        student.zero_grad()
    only_extra = collate(enc, [4, 5])
    assert "labels" not in only_extra
    multi = T.MultiTeacher([sig, sig], "gold")
    out = KDObjective(student, multi, alpha=0.5)(only_extra)
    assert torch.isfinite(out["loss"]) and "hard" not in out


def test_distill_with_projections_and_schedules_resumes_to_the_same_weights(teacher, tmp_path):
    """A narrower student (hidden-state KD through a learned projection), α and τ on
    schedules: resumed from its step-4 checkpoint, the run ends on the same student and
    projection weights as the uninterrupted one."""
    over = {"student.kind": "smaller", "student.hidden": 16, "student.heads": 2,
            "student.intermediate": 32, "student.init": "random", "kd.features": ["hidden"],
            "kd.alpha": "linear:0.9:0.3", "kd.temperature": "cosine:4:1",
            "kd.keep_projections": True, "train.max_steps": 10, "train.save_every": 2,
            "train.keep_checkpoints": 10, "train.eval_every": 5}
    cfg = dcfg(teacher, tmp_path / "run", **over)
    distill(cfg)
    ck = tmp_path / "run" / "checkpoints"
    ref = load_file(str(ck / "step-00000010" / "model.safetensors"))
    assert any(k.startswith("projections.") for k in ref)
    for c in sorted(ck.iterdir()):
        if int(c.name.split("-")[1]) > 4:
            shutil.rmtree(c)
    res = distill(cfg, resume=True)
    assert res["steps"] == 10
    got = load_file(str(ck / "step-00000010" / "model.safetensors"))
    assert set(got) == set(ref)
    for k in ref:
        assert torch.equal(got[k], ref[k]), k


def test_bad_alpha_and_attention_mse(teacher, tmp_path):
    for bad in (-0.5, 1.5, "linear:0.9:-0.2"):
        with pytest.raises(ConfigError, match=r"'kd.alpha': alpha must stay in \[0, 1\]"):
            distill(dcfg(teacher, tmp_path / f"a{bad}", **{"kd.alpha": bad}))
    runs = {}
    for loss in ("kl", "mse"):
        run = tmp_path / f"att-{loss}"
        distill(dcfg(teacher, run, **{"kd.features": ["attention"],
                                      "kd.losses": {"attention": loss},
                                      "train.max_steps": 2}))
        recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        runs[loss] = next(r for r in recs if r["type"] == "train")["inter"]
    # the same first batch, two different attention losses: MSE of probabilities is far
    # smaller than their KL here
    assert runs["mse"] != runs["kl"] and runs["mse"] < runs["kl"]
    with pytest.raises(ConfigError, match=r"'kd.losses': attention takes one of \['kl', 'mse'\]"):
        distill(dcfg(teacher, tmp_path / "badloss", **{"kd.features": ["attention"],
                                                      "kd.losses": {"attention": "cosine"}}))


def test_features_too_big_to_cache_run_the_teacher_online(teacher, tmp_path, monkeypatch,
                                                          capsys):
    """Hidden-state KD whose cached features would not fit in memory: the teacher runs online
    (said in one line) and the run completes, instead of being killed for memory."""
    from lmdistill import teachers as TT

    enc = encode(get_task("sst2").load("train", limit=3, seed=0), hub.load_tokenizer(
        str(teacher)), MAX_LEN)
    lens = enc.lengths
    needs = T.Needs(hidden=(0, 2), attention=(1,))
    # 4 bytes x (Σ L x D x 2 hidden layers + Σ L² x H x 1 attention layer), by hand
    assert TT.cache_bytes(enc, needs, 32, 2) == 4 * (sum(lens) * 32 * 2 +
                                                     sum(n * n for n in lens) * 2)
    monkeypatch.setattr(TT, "available_memory", lambda: 10_000)  # 10 kB free
    res = distill(dcfg(teacher, tmp_path / "online", **{"kd.features": ["hidden"],
                                                       "train.max_steps": 2}))
    assert "running the teacher online instead" in capsys.readouterr().err
    assert res["teacher_cache"] == [None] and res["steps"] == 2


def test_distill_reports_how_well_the_teacher_fits_its_training_rows(tiny_bert, tmp_path,
                                                                     capsys):
    """``teacher_train`` is the teacher's accuracy on the labelled rows it teaches on, read
    from its cache (unlabelled extra rows left out); it matches a pass of the teacher over the
    same rows. A teacher that memorised those rows (trained on them to ~100%, far above dev)
    is named as such in the log and in the report's verdict."""
    from lmdistill.report import diagnosis as D
    from lmdistill.report.load import load_run

    over = {"data.task": "sst2", "data.limit": 64, "data.eval_limit": 64,
            "data.max_length": MAX_LEN, "train.batch_size": 16, "train.progress": False,
            "train.num_threads": 1, "train.eval_every": None}
    api.finetune(C.build(C.FinetuneConfig, overrides={
        **over, "output_dir": str(tmp_path / "t"), "model.name": str(tiny_bert),
        "train.epochs": 25, "train.lr": 2e-3}))
    teacher = tmp_path / "t" / "model"
    cfg = C.build(C.DistillConfig, overrides={
        **over, "output_dir": str(tmp_path / "run"), "teacher.name": str(teacher),
        "teacher.cache_dir": str(tmp_path / "cache"), "student.num_layers": 1,
        "train.epochs": 1, "train.lr": 1e-3})
    res = distill(cfg, extra_texts=["an unlabelled sentence", "and one more , quite long"])
    assert res["teacher_train_rows"] == 64
    rows = get_task("sst2").load("train", limit=64, seed=cfg.train.seed)
    enc = encode(rows, hub.load_tokenizer(str(teacher)), MAX_LEN)
    t = hub.load_classifier(str(teacher)).eval()
    b = collate(enc, list(range(len(enc))), with_labels=False)
    with torch.no_grad():
        pred = t(**{k: b[k] for k in T.MODEL_INPUTS if k in b}).logits.argmax(-1)
    expect = float((pred == torch.tensor([r.label for r in rows])).float().mean())
    assert res["teacher_train"]["accuracy"] == pytest.approx(expect, abs=1e-6)
    assert res["teacher_train"]["accuracy"] - res["teacher_dev"]["accuracy"] >= 0.05, res
    out = capsys.readouterr().err  # stderr: the CLI's stdout is the result JSON
    assert f"the teacher on its 64 labelled training rows: accuracy {expect:.4f}" in out
    assert "fits its training rows far better than new text" in out
    assert "fits its training rows far better than new text" in D.verdict(
        load_run(tmp_path / "run"))
