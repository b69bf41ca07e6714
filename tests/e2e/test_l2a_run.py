"""L2A end to end with tiny real-vocabulary models on real data (SST-2 → RT): teacher, the
baseline round, two generate → select → distil → reward rounds, resume, report, CLI errors."""

from __future__ import annotations

import json

import pytest

from conftest import make_tiny_mlm
from lmdistill import api
from lmdistill import config as C
from lmdistill.cli import main as cli_main


@pytest.fixture(scope="module")
def mlm(tiny_bert, tmp_path_factory):
    return make_tiny_mlm(tiny_bert, tmp_path_factory.mktemp("l2a-mlm"), seed=7)


def _cfg(tmp_path, tiny_bert, mlm, **kw):
    return C.build(C.L2AConfig, overrides={
        "output_dir": str(tmp_path / "l2a"), "data.task": "rt", "data.limit": 40,
        "data.eval_limit": 40, "data.max_length": 48, "l2a.source_task": "sst2",
        "l2a.source_limit": 40, "l2a.mlm": str(mlm), "l2a.teacher_base": str(tiny_bert),
        "l2a.rounds": 2, "l2a.candidates": 8, "student.base": str(tiny_bert),
        "student.num_layers": 1, "train.max_steps": 3, "train.batch_size": 8,
        "train.progress": False, "teacher_train.max_steps": 3, "teacher_train.batch_size": 8,
        "teacher_train.progress": False, "teacher.cache_dir": str(tmp_path / "tc"), **kw})


def test_tiny_l2a_rounds_and_resume(tiny_bert, mlm, tmp_path):
    res = api.l2a(_cfg(tmp_path, tiny_bert, mlm))
    rounds = res["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[0]["reward"] is None and rounds[0]["kept_total"] == 0
    for prev, r in zip(rounds, rounds[1:]):
        assert r["reward"] == pytest.approx(r["metric"] - prev["metric"])
        # every kept candidate (8 a round) joins the transfer set of this and later rounds
        assert r["kept_total"] == prev["kept_total"] + round(8 * r["kept_fraction"])
    assert (res["target_rows"], res["reward_rows"]) == (28, 12)
    # the final figure is the last round's student, evaluated on the target's eval split
    ev = api.evaluate(res["model_dir"], "rt", "dev", limit=40, max_length=48,
                      progress=False)
    assert ev["accuracy"] == pytest.approx(res["final"]["accuracy"], abs=1e-9)
    st = tmp_path / "l2a" / "stages"
    assert (st / "02-round-01" / "selector.json").exists()
    r1 = json.loads((st / "02-round-01" / "stage.json").read_text())["result"]
    assert r1["candidates"] == 8 and r1["kept"] == round(8 * r1["kept_fraction"])
    assert (tmp_path / "l2a" / "rounds.png").exists()
    # the default reward: one influence estimate per candidate, fitted before the round acts;
    # the report shows what the selector learned
    sel = rounds[1]["selector"]
    assert sel["steps"] == 50 and len(sel["weights"]) == len(sel["features"]) == 5
    assert 0 <= sel["helpful"] <= 8
    assert "What the selector learned" in (tmp_path / "l2a" / "report.md").read_text()
    again = api.l2a(_cfg(tmp_path, tiny_bert, mlm), resume=True)
    assert again["rounds"] == rounds and again["final"] == res["final"]


def test_l2a_bad_input(tiny_bert, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_main(["l2a", "--task", "rt", "--source", "sst2", "--out", str(tmp_path / "x")])
    assert "masked LM" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["l2a", "--task", "rt", "--source", "stsb", "--mlm", str(tiny_bert),
                  "--out", str(tmp_path / "y")])
    assert "same labels" in capsys.readouterr().err


def test_baselines_share_rows_teacher_and_round0_with_l2a(tiny_bert, mlm, tmp_path):
    """EDA / CBERT / no augmentation as `l2a.augmenter` in the same pipeline: with L2A's
    teacher, the round-0 student is the same run (same metric); every method trains the same
    rounds for the same steps (a chained round must not be an advantage of L2A's); the
    baseline spreads exactly `augment_samples` augmented rows over the rounds (5 + 6)."""
    ref = api.l2a(_cfg(tmp_path, tiny_bert, mlm))
    teacher = str(tmp_path / "l2a" / "stages" / "00-teacher" / "model")

    def steps(out):  # per round, from each stage's metrics (L2A's stage 00 is its teacher)
        return [json.loads(p.read_text())["steps"]
                for p in sorted((out / "stages").glob("*-round-*/metrics.json"))]

    got = {}
    for aug in ("none", "eda", "cbert", "random", "generated-all", "source"):
        got[aug] = api.l2a(_cfg(tmp_path, tiny_bert, mlm, **{
            "output_dir": str(tmp_path / aug), "teacher.name": teacher,
            "l2a.augmenter": aug, "l2a.augment_samples": 11}))
        assert got[aug]["rounds"][0]["metric"] == ref["rounds"][0]["metric"]
        assert got[aug]["augmenter"] == aug
        assert [r["round"] for r in got[aug]["rounds"]] == [0, 1, 2]
        assert steps(tmp_path / aug) == steps(tmp_path / "l2a") == [3, 3, 3]
    assert got["none"]["kept_total"] == 0
    # random / generated-all draw from the very pool L2A's selector saw in each round
    st = {aug: [json.loads(p.read_text())["result"]
                for p in sorted((tmp_path / aug / "stages").glob("*-round-0[12]/stage.json"))]
          for aug in ("l2a", "random", "generated-all", "source")}
    for r in range(2):
        pool = st["l2a"][r]["pool_digest"]
        assert st["random"][r]["pool_digest"] == st["generated-all"][r]["pool_digest"] == pool
    assert [r["kept_total"] for r in got["generated-all"]["rounds"]] == [0, 8, 16]
    # source: teacher-labelled source rows as they are, none twice
    cfg = _cfg(tmp_path, tiny_bert, mlm)
    from lmdistill.data.tasks import get_task

    src = {e.text_a for e in get_task("sst2").load("train", limit=40, seed=cfg.train.seed)}
    kept = st["source"][1]["kept_texts"]
    assert len(kept) == len(set(kept)) == 11 and set(kept) <= src
    # random keeps pool texts: each of its round-1 rows is one of generated-all's round-1 rows
    assert set(map(str, st["random"][0]["kept_texts"])) <= set(
        map(str, st["generated-all"][0]["kept_texts"]))
    for aug in ("eda", "cbert", "random", "source"):
        assert [r["kept_total"] for r in got[aug]["rounds"]] == [0, 5, 11]
        for r, total in ((1, 5), (2, 11)):
            metrics = json.loads((tmp_path / aug / "stages" / f"{r:02d}-round-{r:02d}"
                                  / "metrics.json").read_text())
            assert metrics["train_examples"] == ref["target_rows"] + total


def test_generator_stage_trains_the_mlm_on_source_and_target_text(tiny_bert, mlm, tmp_path):
    """``l2a.generator_steps``: the generator's MLM is trained (whole model) on the source
    rows and the available target rows, never the reward rows, before the rounds, which then
    generate with it; its held-out masked-token accuracy is in the result."""
    res = api.l2a(_cfg(tmp_path, tiny_bert, mlm, **{"l2a.generator_steps": 2, "l2a.rounds": 1,
                                                     "l2a.source_limit": 300}))
    gen = res["generator"]
    assert gen["steps"] == 2 and 0 <= gen["mlm_accuracy"] <= 1 and gen["heldout_blocks"] > 0
    st = tmp_path / "l2a" / "stages"
    text = (st / "01-generator" / "text.txt").read_text().splitlines()
    assert gen["text_rows"] == len(text) == 300 + res["target_rows"]
    from lmdistill.data.tasks import get_task

    # of the 40 target rows, the 28 fit rows are in the text and the 12 reward rows are not
    seed = _cfg(tmp_path, tiny_bert, mlm).train.seed
    rows = get_task("rt").load("train", limit=40, seed=seed)
    assert len(set(text) & {e.text_a for e in rows}) == res["target_rows"] == 28
    assert (st / "01-generator" / "model" / "config.json").exists()
    assert gen["model"] == str(st / "01-generator" / "model")
