"""Lexical KD end to end with tiny random BERTs on a real Raganato set: an NN sense teacher
built from SE13 (a quarter of its documents held out), then ``lmdistill lexical-kd`` (KD +
the sense term; and the direct student with a learned table, no teacher), each scored as an
NN sense encoder on SE07 with MFS and the candidates split beside it; a second call resumes
(every stage done: nothing recomputed)."""

from __future__ import annotations

import json

import pytest

from lmdistill.cli import main as cli_main
from lmdistill.data.wsd import load_corpus
from lmdistill.errors import ConfigError, DataError
from lmdistill.methods.lexical import lmms, lmms_tune


@pytest.fixture
def cache(lexical_cache, monkeypatch):
    monkeypatch.setenv("LMDISTILL_CACHE", str(lexical_cache))
    return lexical_cache


@pytest.fixture
def teacher(tmp_path, cache, data_dir, tiny_bert):
    out = tmp_path / "teacher"
    lmms.build_sense_vectors(out, str(tiny_bert), "SE13:8", data_dir, holdout=0.25, seed=0,
                             max_length=128)
    lmms_tune.tune(out, data_dir, grid={"layers": [(-1,), (1, 2)], "combine": ("sum",),
                                        "beta": (0.0, 1.0), "w": (0.0, 0.1)})
    return out


def test_load_corpus_takes_the_first_documents(cache, data_dir):
    sents, gold = load_corpus("SE13:3", data_dir)
    assert sorted({s.id.split(".")[0] for s in sents}) == ["d000", "d001", "d002"]
    assert set(gold) == {t.id for s in sents for _, t in s.instances} and gold
    with pytest.raises(DataError, match="documents"):
        load_corpus("SE13:x", data_dir)


def _run(tmp_path, teacher, name, *extra):
    out = tmp_path / name
    cli_main(["lexical-kd", "--teacher-vectors", str(teacher), "--out", str(out),
              "-o", "data.task=SE13:8", "-o", "student.num_layers=1", "-o",
              "train.max_steps=4", "-o", "train.batch_size=8", "-o", "train.progress=false",
              "-o", "lexical.eval_sets=[SE07]", *extra])
    return out, json.loads((out / "metrics.json").read_text())


def test_lexical_kd_cli_end_to_end_and_resume(tmp_path, cache, data_dir, teacher):
    out, res = _run(tmp_path, teacher, "kd", "-o", "lexical.sense_weight=1")
    se07 = res["sets"]["SE07"]
    assert se07["instances"] == 455 and se07["model"]["answered"] == 455
    assert se07["mfs"]["f1"] == pytest.approx(0.5516, abs=1e-3)
    assert 0 <= res["wsd"]["SE07"]["f1"] <= 1 and set(res["wsd"]["SE07"]) >= {"le4", "gt4"}
    tr = res["train"]
    assert tr["steps"] == 4 and tr["train_sentences"] > 0 and 0 < tr["cosine"] <= 1
    assert tr["split"] == "heldout" and "sense_accuracy" in tr
    assert res["targets"]["targets"] == tr["train_targets"] and not res["targets"]["reused"]
    assert res["params"] == res["student"]["params"] and res["student"]["layers"] == 1
    stages = sorted(p.name for p in (out / "stages").iterdir())
    assert stages == ["00-student", "01-targets", "02-train", "03-wsd"]
    sv = json.loads((out / "stages/03-wsd/sense-vectors/index.json").read_text())
    tix = json.loads((teacher / "index.json").read_text())
    assert sv["heldout_documents"] == tix["heldout_documents"] and sv["choice"]
    assert (out / "report.md").exists()
    # resumed: every stage done, the same result
    done = {p: p.stat().st_mtime for p in out.glob("stages/*/stage.json")}
    _, again = _run(tmp_path, teacher, "kd", "-o", "lexical.sense_weight=1", "--resume")
    assert again["wsd"] == res["wsd"]
    assert {p: p.stat().st_mtime for p in out.glob("stages/*/stage.json")} == done
    # another run with the same teacher, sentences and layers reuses the cached targets
    _, mse = _run(tmp_path, teacher, "kd-mse", "-o", "lexical.kd_loss=mse")
    assert mse["targets"]["reused"] and mse["targets"]["cache"] == res["targets"]["cache"]


def test_direct_student_has_no_teacher_stage(tmp_path, cache, data_dir, teacher):
    out, res = _run(tmp_path, teacher, "direct", "-o", "lexical.kd_weight=0", "-o",
                    "lexical.sense_weight=1", "-o", "lexical.sense_table=learned")
    assert sorted(p.name for p in (out / "stages").iterdir()) == [
        "00-student", "01-table", "02-train", "03-wsd"]
    assert res["targets"] is None and res["table"]["covered"] > 0
    assert res["train"]["loss"] == pytest.approx(res["train"]["sense"])


def test_the_corpus_must_be_the_teachers(tmp_path, cache, teacher):
    from lmdistill import api
    from lmdistill import config as C

    cfg = C.build(C.LexicalKDConfig, overrides={"lexical.teacher_vectors": str(teacher),
                                                "output_dir": str(tmp_path / "x")})
    with pytest.raises(ConfigError, match="SE13:8"):
        api.lexical_kd(cfg)
