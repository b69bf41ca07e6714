"""Meta-KD's parts: prototype scores, instance weights, per-instance gradients, the
shuffled-domain head, the multi-task teacher's per-domain export."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForSequenceClassification

from lmdistill import losses as L
from lmdistill.errors import ConfigError
from lmdistill.methods.metakd.objective import (MetaKDObjective, MetaTeacherObjective,
                                                MultiTaskTeacherObjective,
                                                batch_permutation, export_domain_teacher)
from lmdistill.methods.metakd.prototype import instance_weights, prototype_scores
from lmdistill.teachers import Needs, OnlineTeacher


def test_prototype_score_by_hand():
    h = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 2.0]])
    d = torch.tensor([0, 0, 1, 1])
    c0, c1 = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 1.5])

    def cos(a, b):
        return float(a @ b / (a.norm() * b.norm()))

    want = [0.5 * (cos(h[0], c0) + cos(h[0], c1)), 0.5 * (cos(h[1], c0) + cos(h[1], c1)),
            0.5 * (cos(h[2], c1) + cos(h[2], c0)), 0.5 * (cos(h[3], c1) + cos(h[3], c0))]
    assert prototype_scores(h, d).tolist() == pytest.approx(want, abs=1e-6)
    # three domains: "others" is the mean of the other two centroids
    h3 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    t = prototype_scores(h3, torch.tensor([0, 1, 2]))
    assert float(t[0]) == pytest.approx(0.5 * (1 + cos(h3[0], (h3[1] + h3[2]) / 2)), abs=1e-6)
    with pytest.raises(ConfigError, match="two domains"):
        prototype_scores(h, torch.zeros(4, dtype=torch.long))


def test_instance_weights_by_hand():
    t, p = torch.tensor([0.5, 0.9]), torch.tensor([0.2, 1.0])
    want = [1.5 / (1 + math.exp(0.64)), 1.9 / (1 + math.exp(0.0))]
    assert instance_weights(t, p).tolist() == pytest.approx(want)


def _bert(layers=2, hidden=16, labels=2, seed=0):
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=60, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=2, intermediate_size=2 * hidden, num_labels=labels,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                     max_position_embeddings=32)
    return BertForSequenceClassification(cfg).eval()


def _batch(weights):
    return {"input_ids": torch.tensor([[1, 10, 11, 12, 2], [1, 20, 21, 22, 2]]),
            "attention_mask": torch.ones(2, 5, dtype=torch.long),
            "labels": torch.tensor([0, 1]), "domain": torch.tensor([0, 1]),
            "row": torch.tensor([0, 1]), "weight": torch.tensor(weights)}


@pytest.mark.parametrize("stage", [1, 2])
def test_instance_weights_scale_each_instance_gradient(stage):
    """Two instances with weights w1, w2 contribute in that ratio, in every term (stage 1:
    hidden + attention matching + domain representation; stage 2: soft KD + hard CE)."""
    from lmdistill.mapping import Projections, build_matches

    teacher = _bert(layers=2, hidden=24, seed=1)
    grads = {}
    for ws in ([1.0, 1.0], [3.0, 0.5]):
        student = _bert(layers=1, hidden=16, seed=2)
        matches = build_matches([(1, 2)], ["hidden", "attention"], 1.0) if stage == 1 else []
        proj = Projections(matches, 16, 24)
        torch.manual_seed(3)
        obj = MetaKDObjective(student, OnlineTeacher(teacher, Needs(hidden=(2,), attention=(2,))
                                                     if stage == 1 else Needs()),
                              matches, proj, alpha=0.5, temperature=2.0,
                              logit_loss=stage == 2)
        if stage == 1:
            obj.set_domain_targets(torch.randn(2, 24, generator=torch.Generator().manual_seed(4)),
                                   2)
        obj.eval()
        out = obj(_batch(ws))
        if stage == 1:
            assert {"inter", "domain_rep"} <= set(out) and "soft" not in out
        else:
            assert {"soft", "hard"} <= set(out)
        out["loss"].backward()
        g = student.bert.embeddings.word_embeddings.weight.grad
        grads[tuple(ws)] = (g[[10, 11, 12]].norm(), g[[20, 21, 22]].norm())
    (a1, b1), (a2, b2) = grads[(1.0, 1.0)], grads[(3.0, 0.5)]
    # normalised by the sum of weights: instance k's gradient scales by 2·w_k / (w1 + w2)
    assert float(a2 / a1) == pytest.approx(2 * 3.0 / 3.5, rel=1e-4)
    assert float(b2 / b1) == pytest.approx(2 * 0.5 / 3.5, rel=1e-4)


def test_domain_head_gets_a_new_permutation_of_the_batch_domains_every_step():
    """The corrupted labels are the batch's own domain labels, permuted afresh each step by
    (seed, step), through the authors' tanh(dense)+dropout head."""
    perms = {tuple(batch_permutation(8, seed=3, step=k).tolist()) for k in range(6)}
    assert len(perms) > 1 and all(sorted(p) == list(range(8)) for p in perms)
    assert batch_permutation(8, 3, 4).tolist() == batch_permutation(8, 3, 4).tolist()
    obj = MetaTeacherObjective(_bert(), 3, lam=0.5, seed=3).eval()
    assert isinstance(obj.domain_head[1], torch.nn.Tanh)
    assert isinstance(obj.domain_head[2], torch.nn.Dropout)
    b = _batch([1.0, 1.0])
    b["domain"] = torch.tensor([0, 2])
    _, rep = obj.represent(b)
    want_ce = F.cross_entropy(obj.model(input_ids=b["input_ids"]).logits, b["labels"])
    seen = set()
    for step in range(8):
        obj.on_step_begin(step, 8)
        out = obj(b)
        shuffled = b["domain"][batch_permutation(2, 3, step)]
        seen.add(tuple(shuffled.tolist()))
        want_dom = L.hard_ce_loss(obj.domain_head(rep), shuffled)
        torch.testing.assert_close(out["domain_ce"], want_dom.detach())
        torch.testing.assert_close(out["loss"], (want_ce + 0.5 * want_dom).detach())
    assert seen == {(0, 2), (2, 0)}  # both orders drawn over the steps
    del b["domain"]
    with pytest.raises(ConfigError, match="domain"):
        obj(b)


def test_multitask_teacher_exports_each_domain_as_a_plain_classifier(tmp_path):
    from lmdistill.models import hub

    model = _bert()
    model.save_pretrained(tmp_path / "base")
    hub.load_tokenizer("minilm-l6").save_pretrained(tmp_path / "base")
    obj = MultiTaskTeacherObjective(model, 3, hub.load_tokenizer("minilm-l6")).eval()
    with torch.no_grad():
        for h in obj.heads:
            torch.nn.init.normal_(h.weight)
    obj.save_pretrained(tmp_path / "mt")
    b = _batch([1.0, 1.0])
    for d in (0, 2):
        export_domain_teacher(tmp_path / "mt", d, tmp_path / f"d{d}", hub.load_classifier)
        m = hub.load_classifier(str(tmp_path / f"d{d}")).eval()
        bd = dict(b, domain=torch.tensor([d, d]))
        torch.testing.assert_close(m(input_ids=b["input_ids"]).logits, obj.logits(bd))


def test_multitask_teacher_without_a_domain_predicts_it_by_the_trained_heads(tmp_path):
    """No in-domain data: domain 1's head never trains; the teacher (in training, evaluation
    and the exported folder) predicts domain 1 by the mean of heads 0 and 2's logits."""
    from lmdistill.models import hub

    model = _bert()
    obj = MultiTaskTeacherObjective(model, 3, hub.load_tokenizer("minilm-l6"),
                                    trained=[0, 2]).eval()
    with torch.no_grad():
        for h in obj.heads:
            torch.nn.init.normal_(h.weight)
            torch.nn.init.normal_(h.bias)
    b = _batch([1.0, 1.0])
    pooled = model.bert(input_ids=b["input_ids"]).pooler_output
    want = (obj.heads[0](pooled) + obj.heads[2](pooled)) / 2
    torch.testing.assert_close(obj.logits(dict(b, domain=torch.tensor([1, 1]))), want)
    torch.testing.assert_close(obj.logits(dict(b, domain=torch.tensor([2, 2]))),
                               obj.heads[2](pooled))
    obj.save_pretrained(tmp_path / "mt")
    export_domain_teacher(tmp_path / "mt", 1, tmp_path / "d1", hub.load_classifier)
    m = hub.load_classifier(str(tmp_path / "d1")).eval()
    torch.testing.assert_close(m(input_ids=b["input_ids"]).logits, want.detach())
    with pytest.raises(ConfigError, match="subset"):
        MultiTaskTeacherObjective(_bert(), 3, trained=[3])
