"""Config building: defaults < YAML < overrides, section by section."""

from __future__ import annotations

import pytest

from lmdistill import config as C
from lmdistill.errors import ConfigError


def test_overriding_one_field_keeps_the_commands_section_defaults(tmp_path):
    # DistillConfig's train section defaults to lr 1e-4 (TrainConfig alone: 5e-5); setting
    # another train field used to rebuild the section from TrainConfig's defaults
    assert C.build(C.DistillConfig).train.lr == 1e-4
    assert C.build(C.DistillConfig, overrides={"train.epochs": 2}).train.lr == 1e-4
    assert C.build(C.DistillConfig, overrides=["train.epochs=2"]).train.epochs == 2
    s = C.build(C.SearchConfig, overrides={"train.seed": 3, "retrain.epochs": 1})
    assert (s.train.lr, s.train.epochs, s.retrain.lr, s.retrain.epochs) == (1e-3, 1.0, 1e-3, 1)
    m = C.build(C.MetaKDConfig, overrides={"teacher_train.seed": 2})
    assert (m.teacher_train.epochs, m.kd.features) == (2.0, ["hidden", "attention"])
    y = tmp_path / "run.yaml"
    y.write_text("train:\n  epochs: 5\nkd:\n  alpha: 0.9\n")
    c = C.build(C.DistillConfig, y, {"train.seed": 7})
    assert (c.train.lr, c.train.epochs, c.train.seed, c.kd.alpha, c.kd.temperature) == \
        (1e-4, 5, 7, 0.9, 2.0)
    # free-form dict fields are replaced, not merged
    c = C.build(C.DistillConfig, overrides={"kd.losses": {"attention": "mse"}})
    assert c.kd.losses == {"attention": "mse"}
    with pytest.raises(ConfigError, match="train.lrr"):
        C.build(C.DistillConfig, overrides={"train.lrr": 1})
