"""The nearest-neighbour sense teacher end to end with a tiny random BERT: sense vectors from a
real Raganato set (SE13, 13 documents, a quarter held out), the choice tuned on the held-out
documents, the cached files (safetensors + JSON, no pickles), and ``lmdistill wsd
--sense-vectors`` on SE07 with MFS and the candidates split beside it."""

from __future__ import annotations

import json

import pytest

from lmdistill.cli import main as cli_main
from lmdistill.methods.lexical import lmms, lmms_tune


@pytest.fixture
def cache(lexical_cache, monkeypatch):
    monkeypatch.setenv("LMDISTILL_CACHE", str(lexical_cache))
    return lexical_cache


def test_lmms_teacher_tiny_bert_cli(tmp_path, cache, data_dir, tiny_bert):
    out = tmp_path / "sv"
    ix = lmms.build_sense_vectors(out, str(tiny_bert), "SE13", data_dir, holdout=0.25, seed=0,
                                  max_length=128)
    assert (ix["documents"], len(ix["heldout_documents"]), ix["n_states"]) == (13, 3, 3)
    assert ix["train_instances"] < 1644 and ix["choice"] is None
    r = lmms_tune.tune(out, data_dir, grid={"layers": [(-1,), (1, 2)], "combine": ("sum",),
                                       "beta": (0.0, 1.0), "w": (0.0, 0.1)})
    assert r["heldout_instances"] > 0 and 0 <= r["heldout_f1"] <= 1
    assert r["choice"] == lmms._index(out)["choice"]
    assert sorted(p.name for p in out.iterdir()) == [
        "gloss.safetensors", "heldout.safetensors", "index.json", "senses.safetensors"]
    # already built and tuned: prepare() leaves it as it is
    assert lmms_tune.prepare(out, "no-such-encoder", data_dir)["choice"] == r["choice"]
    cli_main(["wsd", "--sets", "SE07", "--sense-vectors", str(out),
              "--output", str(tmp_path / "r.json")])
    res = json.loads((tmp_path / "r.json").read_text())
    se07 = res["sets"]["SE07"]
    assert se07["instances"] == 455 and se07["model"]["answered"] == 455
    assert se07["mfs"]["f1"] == pytest.approx(0.5516, abs=1e-3)
    split = se07["by_candidates"]["mfs"]
    assert split["le4"]["instances"] + split["gt4"]["instances"] == 455
    assert res["choice"]["layers"] == r["choice"]["layers"]
