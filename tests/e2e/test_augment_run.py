"""Augmentation end to end: the SemCor-trained POS tagger on a held-out corpus, `lmdistill
augment` on a real task, and augmented text fed to distillation (labelled by the teacher)."""

from __future__ import annotations

import json

import pytest

from lmdistill import api
from lmdistill import config as C
from lmdistill.augment.run import read_augmented
from lmdistill.cli import main as cli_main
from lmdistill.data.wsd import evaluation_set
from lmdistill.methods.kd.run import distill


@pytest.fixture
def cache(lexical_cache, monkeypatch):
    monkeypatch.setenv("LMDISTILL_CACHE", str(lexical_cache))
    return lexical_cache


def test_semcor_tagger_on_held_out_text(cache, data_dir):
    from lmdistill.augment.tagger import TAGS, get_tagger

    tagger = get_tagger(str(data_dir))
    sents, _ = evaluation_set("SE07", data_dir)  # WSJ text: not SemCor
    ok = n = 0
    for s in sents:
        words = [t.text.replace("_", " ") for t in s.tokens]
        for t, (_, got) in zip(s.tokens, tagger.tag(words)):
            if t.pos in TAGS:  # content words, whose tags EDA uses
                n += 1
                ok += got == t.pos
    assert n > 1000 and ok / n > 0.85


def test_augment_cli_and_distillation_on_augmented_text(cache, tiny_bert, tmp_path):
    out = tmp_path / "aug.jsonl"
    cli_main(["augment", "--task", "mrpc", "--limit", "6", "--n-aug", "2", "--out", str(out)])
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 12 and {r["source"] for r in rows} == set(range(6))
    assert all(r["text_b"] and r["label"] in (0, 1) for r in rows)  # pairs stay pairs
    again = tmp_path / "again.jsonl"
    cli_main(["augment", "--task", "mrpc", "--limit", "6", "--n-aug", "2", "--out", str(again)])
    assert again.read_text() == out.read_text()  # deterministic under the seed
    common = {"data.task": "mrpc", "data.limit": 32, "data.eval_limit": 32,
              "train.max_steps": 2, "train.batch_size": 8, "train.progress": False}
    api.finetune(C.build(C.FinetuneConfig, overrides={
        **common, "output_dir": str(tmp_path / "t"), "model.name": str(tiny_bert)}))
    res = distill(C.build(C.DistillConfig, overrides={
        **common, "output_dir": str(tmp_path / "s"), "teacher.name": str(tmp_path / "t/model"),
        "student.num_layers": 1, "teacher.cache_dir": str(tmp_path / "tc")}),
        extra_texts=read_augmented(out))
    assert res["train_examples"] == 32 + 12
    with pytest.raises(SystemExit):
        cli_main(["augment", "--method", "backtranslate", "--task", "mrpc",
                  "--out", str(tmp_path / "x.jsonl")])
