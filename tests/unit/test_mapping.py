"""Layer mappings, layer matches and projections (lmdistill.mapping)."""

import pytest
import torch
from torch import nn

from lmdistill.errors import ConfigError
from lmdistill.mapping import (
    PRESETS,
    LayerMatch,
    MappingError,
    Projections,
    build_matches,
    explicit,
    first_k,
    last_k,
    resolve_mapping,
    skip,
    uniform,
)


def test_uniform():
    # student i -> teacher i·6/3 = 2i, plus the embedding pair
    assert uniform(6, 3) == [(0, 0), (1, 2), (2, 4), (3, 6)]
    # 12/4 = 3: the BERT-base -> 4-layer TinyBERT mapping
    assert uniform(12, 4) == [(0, 0), (1, 3), (2, 6), (3, 9), (4, 12)]
    assert uniform(6, 3, include_embeddings=False) == [(1, 2), (2, 4), (3, 6)]
    assert uniform(6, 6) == [(i, i) for i in range(7)]
    # non-divisible: round(i·12/5) = 2.4, 4.8, 7.2, 9.6, 12 -> 2, 5, 7, 10, 12 (last -> last)
    assert uniform(12, 5, include_embeddings=False) == [(1, 2), (2, 5), (3, 7), (4, 10), (5, 12)]


def test_last_first_skip():
    # student i -> teacher 6 − 3 + i
    assert last_k(6, 3, include_embeddings=False) == [(1, 4), (2, 5), (3, 6)]
    assert last_k(6, 3) == [(0, 0), (1, 4), (2, 5), (3, 6)]
    assert first_k(6, 3, include_embeddings=False) == [(1, 1), (2, 2), (3, 3)]
    assert skip(12, 3, every=2) == [(0, 0), (1, 2), (2, 4), (3, 6)]
    assert skip(12, 4) == uniform(12, 4)  # every defaults to 12 // 4 = 3
    with pytest.raises(MappingError, match="teacher layer 15"):
        skip(12, 3, every=5)
    with pytest.raises(MappingError, match="every"):
        skip(12, 3, every=0)


def test_depth_validation():
    with pytest.raises(MappingError, match="more layers"):
        uniform(3, 6)
    with pytest.raises(MappingError, match="n_teacher"):
        last_k(0, 1)
    with pytest.raises(MappingError, match="n_student"):
        uniform(6, True)


def test_explicit_validation():
    assert explicit([(2, 4), (1, 2), [0, 0]]) == [(0, 0), (1, 2), (2, 4)]
    assert explicit({1: 3, "2": "6"}, n_teacher=6, n_student=2) == [(1, 3), (2, 6)]
    with pytest.raises(MappingError, match=r"\(3, 7\).*teacher has layers 0..6"):
        explicit([(1, 2), (3, 7)], n_teacher=6, n_student=3)
    with pytest.raises(MappingError, match=r"\(4, 6\).*student has layers 0..3"):
        explicit([(4, 6)], n_teacher=6, n_student=3)
    with pytest.raises(MappingError, match=r"\(-1, 2\)"):
        explicit([(-1, 2)])
    with pytest.raises(MappingError, match="student layer 1 is already mapped to teacher layer 2"):
        explicit([(1, 2), (1, 3)])
    with pytest.raises(MappingError, match="not a"):
        explicit([(1, 2, 3)])
    with pytest.raises(MappingError, match="ints"):
        explicit([(1.5, 2)])
    with pytest.raises(MappingError, match="empty"):
        explicit([])
    # a MappingError is both a ValueError and a (one-line, CLI-printed) ConfigError
    with pytest.raises(ValueError):
        explicit("uniform")
    assert issubclass(MappingError, ConfigError)


def test_presets_and_resolve():
    assert set(PRESETS) >= {"uniform", "last", "first", "skip"}
    assert resolve_mapping("uniform", 6, 3) == uniform(6, 3)
    assert resolve_mapping("last", 6, 3, include_embeddings=False) == [(1, 4), (2, 5), (3, 6)]
    assert resolve_mapping("first", 6, 3) == first_k(6, 3)
    assert resolve_mapping("skip:2", 12, 3) == [(0, 0), (1, 2), (2, 4), (3, 6)]
    assert resolve_mapping(" Uniform ", 12, 4) == uniform(12, 4)
    assert resolve_mapping([(3, 6), (1, 1)], 6, 3) == [(1, 1), (3, 6)]
    assert resolve_mapping({"3": 12}, 12, 3) == [(3, 12)]
    with pytest.raises(MappingError, match="unknown layer mapping 'middle'"):
        resolve_mapping("middle", 6, 3)
    with pytest.raises(MappingError, match="skip:K"):
        resolve_mapping("uniform:2", 6, 3)
    with pytest.raises(MappingError, match=r"\(2, 9\)"):
        resolve_mapping({1: 2, 2: 9}, 6, 3)


def test_layer_match():
    m = LayerMatch(2, 4, "hidden")
    assert m.loss == "mse" and m.weight == 1.0 and m.proj is None
    assert m.key == "s2_t4" and m.student_index == 2 and m.teacher_index == 4
    a = LayerMatch(2, 4, "attention", loss="mse", weight=0.5)
    assert a.student_index == 1 and a.teacher_index == 3  # attentions[i - 1]
    assert LayerMatch(3, 6, "value_relation").loss == "kl"
    assert LayerMatch(0, 0, "cosine").loss == "cosine"
    with pytest.raises(MappingError, match="layer 0 is the embeddings"):
        LayerMatch(0, 2, "attention")
    with pytest.raises(MappingError, match="unknown feature"):
        LayerMatch(1, 1, "logits")  # type: ignore[arg-type]
    with pytest.raises(MappingError, match="loss 'kl' not allowed for hidden"):
        LayerMatch(1, 1, "hidden", loss="kl")
    with pytest.raises(MappingError, match="weight"):
        LayerMatch(1, 1, "hidden", weight=-1.0)
    with pytest.raises(MappingError, match="proj"):
        LayerMatch(1, 1, "attention", proj=True)


def test_build_matches():
    pairs = uniform(6, 3)
    matches = build_matches(pairs, ["hidden", "attention"], weights={"attention": 2.0})
    hidden = [m for m in matches if m.feature == "hidden"]
    attn = [m for m in matches if m.feature == "attention"]
    assert [(m.student_layer, m.teacher_layer) for m in hidden] == pairs
    # no attention for the embedding pair
    assert [(m.student_layer, m.teacher_layer) for m in attn] == [(1, 2), (2, 4), (3, 6)]
    assert all(m.weight == 1.0 for m in hidden) and all(m.weight == 2.0 for m in attn)
    m2 = build_matches([(3, 6)], ["attention", "cosine"], weights=0.5, losses={"attention": "mse"}, proj=True)
    assert [(m.feature, m.loss, m.weight, m.proj) for m in m2] == [("attention", "mse", 0.5, None), ("cosine", "cosine", 0.5, True)]
    with pytest.raises(MappingError, match="layer 0"):
        build_matches([(0, 2)], ["attention"])
    with pytest.raises(MappingError, match="unknown feature"):
        build_matches(pairs, ["hiden"])
    with pytest.raises(MappingError, match="not requested"):
        build_matches(pairs, ["hidden"], weights={"attention": 1.0})


def test_projections_only_where_widths_differ():
    matches = build_matches(uniform(6, 3), ["hidden", "attention", "cosine"])
    same = Projections(matches, student_width=384, teacher_width=384)
    assert same.keys() == []
    assert all(same.get(m) is None for m in matches)
    assert list(same.parameters()) == []

    diff = Projections(matches, student_width=256, teacher_width=768)
    # one per (student, teacher) pair, shared by hidden and cosine; none for attention
    assert sorted(diff.keys()) == ["s0_t0", "s1_t2", "s2_t4", "s3_t6"]
    h = next(m for m in matches if m.feature == "hidden" and m.student_layer == 2)
    c = next(m for m in matches if m.feature == "cosine" and m.student_layer == 2)
    a = next(m for m in matches if m.feature == "attention")
    lin = diff.get(h)
    assert isinstance(lin, nn.Linear) and (lin.in_features, lin.out_features) == (256, 768)
    assert diff.get(c) is lin and diff.get(a) is None
    assert torch.all(lin.bias == 0) and lin.weight.std() < 0.05  # BERT init N(0, 0.02)
    assert diff.keep is False and Projections(matches, 256, 768, keep=True).keep is True

    # per-layer widths: only layer pairs whose widths differ get one
    per_layer = Projections(matches, {0: 128, 1: 768, 2: 768, 3: 768}, 768)
    assert per_layer.keys() == ["s0_t0"]


def test_projections_forced_and_forbidden():
    forced = build_matches([(1, 2)], ["hidden"], proj=True)
    p = Projections(forced, 64, 64)
    lin = p.get(forced[0])
    assert lin is not None
    x = torch.randn(2, 3, 64)
    assert torch.allclose(lin(x), x)  # forced same-width projection starts as the identity
    never = build_matches([(1, 2)], ["hidden"], proj=False)
    assert Projections(never, 64, 64).keys() == []
    with pytest.raises(MappingError, match="proj=False but student width 32 != teacher width 64"):
        Projections(never, 32, 64)


def test_projection_feeds_hidden_mse():
    from lmdistill.losses import hidden_mse_loss

    matches = build_matches([(1, 2)], ["hidden"])
    proj = Projections(matches, 4, 8)
    s, t = torch.randn(2, 3, 4), torch.randn(2, 3, 8)
    loss = hidden_mse_loss(s, t, torch.ones(2, 3), proj=proj.get(matches[0]))
    loss.backward()
    assert proj.get(matches[0]).weight.grad is not None
