"""Meta-KD end to end on slices of the real Amazon domains with tiny real-vocabulary models:
teachers (meta, mixed, multi-task, single), both distillation stages, the no-KD student, the
settings (all data, no in-domain data, a target fraction), resume, CLI and report."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import make_tiny_bert
from lmdistill import api
from lmdistill import config as C
from lmdistill.cli import main as cli_main

DOMAINS = ["amazon-books", "amazon-dvd", "amazon-kitchen"]


@pytest.fixture(scope="module")
def tiny4(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("tiny4"), layers=4)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LMDISTILL_CACHE", str(tmp_path / "cache"))


def _cfg(tmp_path, tiny4, name="mk", **kw):
    return C.build(C.MetaKDConfig, overrides={
        "output_dir": str(tmp_path / name), "teacher_base": str(tiny4),
        "student.base": str(tiny4), "student.num_layers": 2, "data.limit": 32,
        "data.eval_limit": 24, "data.max_length": 48, "metakd.domains": DOMAINS,
        "metakd.targets": ["amazon-dvd"], "metakd.stage1_epochs": 1, "train.epochs": 1,
        "teacher_train.epochs": 1, "train.progress": False, "teacher_train.progress": False,
        "train.batch_size": 16, "teacher_train.batch_size": 16, **kw})


def _jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_all_methods_both_stages_and_resume(tiny4, tmp_path):
    res = api.metakd(_cfg(tmp_path, tiny4))
    assert set(res["per_domain"]) == {"metakd", "single", "mixed", "multitask", "nokd"}
    # each reported accuracy is its student's per-row correctness on the report half of dev
    # (12 of the 24 dev rows), not the half it was selected on
    for m, v in res["per_domain"].items():
        rows = res["report_correct"][m]["dvd"]
        assert len(rows) == 12 and v["dvd"] == pytest.approx(sum(rows) / 12), m
    st = tmp_path / "mk" / "stages"
    names = sorted(p.name for p in st.iterdir())
    assert names[0] == "00-embeddings" and any(n.endswith("meta-all") for n in names)
    meta = json.loads(next(st.glob("*-meta-all")).joinpath("stage.json").read_text())["result"]
    assert meta["rows"] == 3 * 32  # one shared meta-teacher over all three domains
    rec1 = [r for r in _jsonl(next(st.glob("*-metakd-dvd-s1")) / "metrics.jsonl")
            if r["type"] == "train"]
    assert "domain_rep" in rec1[0] and "inter" in rec1[0] and "soft" not in rec1[0]
    rec2 = [r for r in _jsonl(next(st.glob("*-metakd-dvd-s2")) / "metrics.jsonl")
            if r["type"] == "train"]
    assert "soft" in rec2[0] and "domain_rep" not in rec2[0]
    recm = [r for r in _jsonl(next(st.glob("*-meta-all")) / "metrics.jsonl")
            if r["type"] == "train"]
    assert "domain_ce" in recm[0]
    # the stage-2 student is a plain HF folder evaluate takes; chosen on one half of the 24
    # dev rows, reported on the other: the two halves' figures average to all rows' accuracy
    s2 = next(st.glob("*-metakd-dvd-s2")) / "model"
    ev = api.evaluate(str(s2), "amazon-dvd", limit=24, progress=False)
    assert ev["accuracy"] == pytest.approx((res["per_domain"]["metakd"]["dvd"]
                                            + res["per_domain_select"]["metakd"]["dvd"]) / 2)
    assert res["reported_on"] == "report half of dev"
    assert (tmp_path / "mk" / "domains.png").exists()
    assert "Meta-KD: students per domain" in (tmp_path / "mk" / "report.md").read_text()
    again = api.metakd(_cfg(tmp_path, tiny4), resume=True)  # every stage done: nothing reruns
    assert again["per_domain"] == res["per_domain"]


def test_no_in_domain_and_fraction_settings(tiny4, tmp_path):
    from safetensors.torch import load_file

    from lmdistill.models import hub

    res = api.metakd(_cfg(tmp_path, tiny4, "nid", **{
        "metakd.no_in_domain": True, "metakd.methods": ["metakd", "multitask", "nokd"]}))
    st = tmp_path / "nid" / "stages"
    meta = json.loads(next(st.glob("*-meta-dvd")).joinpath("stage.json").read_text())["result"]
    assert meta["rows"] == 2 * 32  # the meta-teacher never saw dvd
    assert set(res["per_domain"]) == {"metakd", "multitask", "nokd"}
    # the multi-task teacher never trained dvd's head (domain 1): the student distils from the
    # mean of the trained heads (books 0, kitchen 2), not from the untouched head 1
    heads = load_file(str(next(st.glob("*-multitask-dvd")) / "model" /
                          "domain_heads.safetensors"))
    used = hub.load_classifier(str(next(st.glob("*-multitask-dvd-s1")) / "teacher"))
    for k in ("weight", "bias"):
        want = (heads[f"heads.0.{k}"] + heads[f"heads.2.{k}"]) / 2
        got = getattr(used.classifier, k).detach()
        assert torch.allclose(got, want, atol=1e-6)
        assert not torch.equal(got, heads[f"heads.1.{k}"])  # head 1 is still its init
    res = api.metakd(_cfg(tmp_path, tiny4, "frac", **{"metakd.fraction": 0.25,
                                                       "metakd.methods": ["metakd", "nokd"]}))
    st = tmp_path / "frac" / "stages"
    meta = json.loads(next(st.glob("*-meta-dvd")).joinpath("stage.json").read_text())["result"]
    assert meta["rows"] == 2 * 32 + 8
    nokd = json.loads(next(st.glob("*-nokd-dvd")).joinpath("stage.json").read_text())["result"]
    assert nokd["rows"] == 8


def test_cli_and_bad_input(tiny4, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_main(["metakd", "--domains", "amazon-books", "--out", str(tmp_path / "x")])
    assert "two domains" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["metakd", "--domains", "amazon-books,amazon-dvd", "--targets", "sst2",
                  "--out", str(tmp_path / "y")])
    assert "not in metakd.domains" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["metakd", "--domains", "amazon-books,stsb", "--out", str(tmp_path / "z")])
    assert "classification" in capsys.readouterr().err


def test_stage2_follows_stage2_epochs(tiny4, tmp_path):
    """metakd.stage2_epochs, not train.epochs, sets stage 2's length (32 rows, batch 16: 2
    steps an epoch); the no-KD student keeps train.epochs. Each stage-2 epoch is evaluated
    on the selection half (one eval record an epoch)."""
    res = api.metakd(_cfg(tmp_path, tiny4, "ep", **{
        "metakd.methods": ["mixed", "nokd"], "metakd.stage1_epochs": 1,
        "metakd.stage2_epochs": 3, "train.epochs": 1}))
    st = tmp_path / "ep" / "stages"

    def result(pattern):
        return json.loads(next(st.glob(pattern)).joinpath("stage.json").read_text())["result"]

    assert result("*-mixed-dvd-s1")["steps"] == 2
    assert result("*-mixed-dvd-s2")["steps"] == 3 * 2
    assert result("*-nokd-dvd")["steps"] == 2
    evals = [r for r in _jsonl(next(st.glob("*-mixed-dvd-s2")) / "metrics.jsonl")
             if r["type"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4, 6]
    s2 = result("*-mixed-dvd-s2")  # the chosen epoch, measured on the other half
    assert s2["best_step"] in (2, 4, 6)
    assert res["per_domain"]["mixed"]["dvd"] == s2["report_accuracy"]
    assert res["per_domain_select"]["mixed"]["dvd"] == s2["accuracy"]
    correct = res["report_correct"]["mixed"]["dvd"]  # 12 reported rows, right or wrong
    assert len(correct) == 12 and sum(correct) / 12 == pytest.approx(s2["report_accuracy"])
