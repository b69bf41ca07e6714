"""AdaBERT's search space: ops, cells, Gumbel sampling, efficiency loss, derivation."""

from __future__ import annotations

import json

import pytest
import torch

from lmdistill import config as C
from lmdistill.methods.adabert.costs import op_costs
from lmdistill.methods.adabert.objective import (AdaBertSearchObjective, efficiency_loss,
                                                 teacher_layer)
from lmdistill.methods.adabert.probes import layer_weights, probe_losses, train_probes
from lmdistill.models.adabert import (OPS, AdaBertConfig, AdaBertForSequenceClassification,
                                      derive, edges_of, from_genotype, make_op)


def _padded(x_valid: torch.Tensor, total: int, junk: float = 1e4):
    """x_valid [1, n, D] padded to ``total`` with junk values, and its mask."""
    n, d = x_valid.shape[1], x_valid.shape[2]
    pad = torch.full((1, total - n, d), junk)
    mask = torch.zeros(1, total, dtype=torch.long)
    mask[0, :n] = 1
    return torch.cat([x_valid, pad], 1), mask


@pytest.mark.parametrize("name", OPS)
def test_op_shapes_and_padding_never_leaks(name):
    torch.manual_seed(0)
    op = make_op(name, 16).eval()
    x = torch.randn(1, 5, 16)
    alone = op(x, torch.ones(1, 5, dtype=torch.long))
    assert alone.shape == x.shape
    for total in (6, 11):
        xp, mask = _padded(x, total)
        out = op(xp, mask)
        assert out.shape == xp.shape
        assert torch.equal(out[0, 5:], torch.zeros(total - 5, 16))  # padding stays zero
        torch.testing.assert_close(out[:, :5], alone, atol=1e-5, rtol=1e-5)
    if name == "zero":
        assert not alone.any()
    if name == "identity":
        torch.testing.assert_close(alone, x)


def test_pools_ignore_padding_by_hand():
    x = torch.tensor([[[1.0], [5.0], [3.0], [100.0]]])
    mask = torch.tensor([[1, 1, 1, 0]])
    mx = make_op("maxpool3", 1)(x, mask)[0, :, 0].tolist()
    av = make_op("avgpool3", 1)(x, mask)[0, :, 0].tolist()
    assert mx == [5.0, 5.0, 5.0, 0.0]
    assert av == pytest.approx([3.0, 3.0, 4.0, 0.0])  # edges average their valid neighbours


def _config(genotype=None, pair=False, cells=3):
    return AdaBertConfig(vocab_size=50, embedding_size=12, hidden=16, max_cells=cells,
                         nodes=3, genotype=genotype, pair=pair, num_labels=2, dropout=0.0)


@pytest.mark.parametrize("pair", [False, True])
def test_model_padding_never_leaks(pair):
    torch.manual_seed(0)
    ids = torch.tensor([[7, 8, 9, 10, 11]])
    tt = torch.tensor([[0, 0, 0, 1, 1]]) if pair else None
    geno = {"cells": 2, "nodes": [[[0, "conv5"], [1, "maxpool3"]], [[1, "dilconv3"],
                                                                     [2, "avgpool3"]],
                                  [[2, "identity"], [3, "conv3"]]]}
    for model in (AdaBertForSequenceClassification(_config(pair=pair)).eval(),
                  from_genotype(geno, _config(pair=pair)).eval()):
        w = torch.softmax(torch.randn(len(edges_of(3)), len(OPS)), -1)
        kw = {"op_weights": w} if model.searching else {}
        alone = model(ids, torch.ones_like(ids), tt, **kw).logits
        padded = torch.cat([ids, torch.tensor([[3, 4, 5]])], 1)
        mask = torch.tensor([[1] * 5 + [0] * 3])
        tt2 = torch.cat([tt, torch.tensor([[1, 1, 1]])], 1) if pair else None
        torch.testing.assert_close(model(padded, mask, tt2, **kw).logits, alone, atol=1e-5,
                                   rtol=1e-5)


def _objective(cells=3, costs=None, seed=0):
    torch.manual_seed(seed)
    model = AdaBertForSequenceClassification(_config(cells=cells))
    s = C.AdaBertSettings(max_cells=cells, hidden=16)
    probes = torch.randn(4, 7, 2)
    return AdaBertSearchObjective(model, probes, [0.5] * 7, costs or [1.0] * len(OPS), None, s)


def _batch(n=4, length=6):
    """A batch for :func:`_objective`'s model (vocabulary of ``_config``): 4 rows, probe rows
    0..3."""
    g = torch.Generator().manual_seed(1)
    vocab = _objective().model.config.vocab_size
    return {"input_ids": torch.randint(0, vocab, (n, length), generator=g),
            "attention_mask": torch.ones(n, length, dtype=torch.long),
            "labels": torch.tensor([i % 2 for i in range(n)]), "probe_row": torch.arange(n)}


def test_gumbel_one_hot_forward_differentiable_backward():
    obj = _objective()
    obj.gumbel_tau = 0.5
    op_w, depth_w = obj.sample()
    assert set(op_w.unique().tolist()) <= {0.0, 1.0} and torch.equal(op_w.sum(-1),
                                                                       torch.ones(len(op_w)))
    assert depth_w.sum() == 1 and set(depth_w.unique().tolist()) <= {0.0, 1.0}
    target = torch.randn_like(op_w)
    ((op_w * target).sum() + (depth_w * torch.arange(3.0)).sum()).backward()
    g = obj.op_logits.grad
    assert g is not None and (g != 0).all()  # soft gradient reaches unselected ops too
    assert (obj.depth_logits.grad != 0).all()


def test_sampled_forward_equals_full_forward_for_hard_samples():
    """GDAS-style: computing only each edge's sampled op gives the same forward value as
    mixing every op with the one-hot weights; both give the logits a gradient."""
    obj = _objective()
    obj.eval()
    ids, mask = torch.tensor([[5, 6, 7, 8, 9]]), torch.ones(1, 5, dtype=torch.long)
    torch.manual_seed(1)
    op_w, _ = obj.sample()
    full = obj.model.cell_outputs(ids, mask, None, op_w, sampled=False)
    fast = obj.model.cell_outputs(ids, mask, None, op_w, sampled=True)
    for a, b in zip(full, fast):
        torch.testing.assert_close(a, b)
    fast[-1].sum().backward()
    assert obj.op_logits.grad is not None and obj.op_logits.grad.abs().sum() > 0


def test_gumbel_temperature_anneals():
    obj = _objective()
    obj.on_step_begin(0, 11)
    assert obj.gumbel_tau == pytest.approx(1.0)
    obj.on_step_begin(5, 11)
    assert obj.gumbel_tau == pytest.approx(0.2 ** 0.5)
    obj.on_step_begin(10, 11)
    assert obj.gumbel_tau == pytest.approx(0.2)


def test_efficiency_loss_grows_with_costlier_ops_and_depth():
    costs = torch.tensor([op_costs(OPS, 64, "params")["normalised"][o] for o in OPS])
    e = len(edges_of(3))
    one = torch.nn.functional.one_hot
    conv7 = one(torch.full((e,), OPS.index("conv7")), len(OPS)).float()
    conv3 = one(torch.full((e,), OPS.index("conv3")), len(OPS)).float()
    pool = one(torch.full((e,), OPS.index("maxpool3")), len(OPS)).float()
    d8, d2 = one(torch.tensor(7), 8).float(), one(torch.tensor(1), 8).float()
    l7, l3, lp = (efficiency_loss(w, d8, costs) for w in (conv7, conv3, pool))
    assert l7 > l3 > lp == 0
    c7 = float(costs[OPS.index("conv7")])
    assert float(costs.sum()) == pytest.approx(1.0)  # shares of the whole search space
    assert efficiency_loss(conv7, d8, costs) == pytest.approx(c7)  # K/K_max · its share
    assert efficiency_loss(conv7, d2, costs) == pytest.approx(2 / 8 * c7)
    flops = op_costs(OPS, 64, "flops")["normalised"]
    assert flops["conv7"] > flops["conv3"] > flops["maxpool3"] > flops["zero"] == 0
    # the paper's size + FLOPs: the mean of the two shares, by hand for conv3
    paper = op_costs(OPS, 64, "size+flops")["normalised"]
    params = op_costs(OPS, 64, "params")["normalised"]
    assert paper["conv3"] == pytest.approx((params["conv3"] + flops["conv3"]) / 2)
    assert sum(paper.values()) == pytest.approx(1.0)


def test_search_loss_uses_the_expected_cost_under_the_architecture_softmax():
    """Issue 30: L_E is the expectation under softmax(op logits) and softmax(depth logits),
    not the cost of the straight-through sample (a noisy estimate of it)."""
    obj = _objective()
    torch.nn.init.normal_(obj.op_logits)
    torch.nn.init.normal_(obj.depth_logits)
    want = efficiency_loss(obj.op_logits.softmax(-1), obj.depth_logits.softmax(0), obj.costs)
    for _ in range(3):  # any sample: the same efficiency term
        out = obj(_batch())
        assert float(out["eff"]) == pytest.approx(float(want.detach()))


@pytest.mark.parametrize("n", [2, 3])
def test_rloo_architecture_gradient_is_the_gradient_of_the_expected_loss(n, monkeypatch):
    """Issue 30: the score-function estimate with a leave-one-out baseline averages to
    ∇_α E_{a~softmax(α)}[L(a)] (here L(a) = Σ_e T[e, a_e] + D[K], so the exact gradient is
    p ⊙ (T − p·T) per edge), on the same footing as the exact ∇L_E."""
    obj = _objective()
    obj.s = obj.s.model_copy(update={"arch_samples": n, "beta": 0.0})
    torch.nn.init.normal_(obj.op_logits)
    torch.nn.init.normal_(obj.depth_logits)
    g = torch.Generator().manual_seed(0)
    table = torch.randn(obj.op_logits.shape, generator=g)
    dtable = torch.randn(obj.depth_logits.shape, generator=g)

    def fake(batch, op_w, depth_w, sampled=None):
        return {"task": (op_w * table).sum() + (depth_w * dtable).sum()}

    monkeypatch.setattr(obj, "search_loss", fake)
    torch.manual_seed(0)
    grads = []
    for _ in range(4000):
        arch = obj.arch_parameters()
        grads.append(torch.cat([gr.flatten() for gr in torch.autograd.grad(
            obj.rloo_loss({})["surrogate"], arch)]))
    grads = torch.stack(grads)
    mean, se = grads.mean(0), grads.std(0) / len(grads) ** 0.5
    p, pd = obj.op_logits.detach().softmax(-1), obj.depth_logits.detach().softmax(0)
    exact = torch.cat([(p * (table - (p * table).sum(-1, keepdim=True))).flatten(),
                       pd * (dtable - (pd * dtable).sum())])
    assert exact.abs().max() > 10 * se.max()  # the average resolves the gradient
    assert ((mean - exact).abs() <= 4 * se + 1e-6).all(), (mean - exact).abs().max()


def test_soft_warm_up_trains_every_op_and_sampled_steps_one_per_edge():
    obj = _objective()
    obj.s = obj.s.model_copy(update={"warmup_forward": "soft", "arch_start": 0.5})
    obj.on_step_begin(0, 10)  # warming up: the architecture softmax, every op computed
    op_w, depth_w, sampled = obj.weight_sample()
    assert not sampled and torch.allclose(op_w, obj.op_logits.softmax(-1))
    obj.search_loss(_batch(), op_w, depth_w, sampled)["loss"].backward()
    convs = [e[o] for cell in obj.model.cells for e in cell.edges for o in range(3)]
    assert all(c.conv.weight.grad is not None for c in convs)
    obj.zero_grad(set_to_none=True)
    obj.on_step_begin(5, 10)  # after it: a one-hot sample, only the sampled ops trained
    op_w, depth_w, sampled = obj.weight_sample()
    assert sampled and torch.equal(op_w.sum(-1), torch.ones(len(op_w)))
    obj.search_loss(_batch(), op_w, depth_w, sampled)["loss"].backward()
    assert not all(c.conv.weight.grad is not None for c in convs)


def test_search_convs_have_no_affine_norm_and_derived_convs_do():
    """Issue 30: an affine LayerNorm after a conv gives it an architecture gradient that
    vanishes near the norm's stationary point; the supernet's convs have none."""
    from lmdistill.models.adabert import Conv

    obj = _objective()
    convs = [m for m in obj.model.modules() if isinstance(m, Conv)]
    assert convs and all(not m.norm.elementwise_affine for m in convs)
    derived = from_genotype(obj.genotype(), obj.model.config)
    dconvs = [m for m in derived.modules() if isinstance(m, Conv)]
    assert all(m.norm.elementwise_affine for m in dconvs)


def test_latency_costs_measured_here(tmp_path, monkeypatch):
    monkeypatch.setenv("LMDISTILL_CACHE", str(tmp_path))
    torch.set_num_threads(2)
    rec = op_costs(["conv7", "identity", "zero"], 32, "latency", batch=4, length=16, reps=4)
    assert torch.get_num_threads() == 2  # timed at LATENCY_THREADS, then restored
    assert rec["raw"]["zero"] == 0 and rec["raw"]["conv7"] > rec["raw"]["identity"] > 0
    assert sum(rec["normalised"].values()) == pytest.approx(1.0) and rec["machine"]
    assert rec["normalised"]["conv7"] == max(rec["normalised"].values())
    assert rec["threads"] == 1 and set(rec["noise"]) == {"conv7", "identity", "zero"}
    again = op_costs(["conv7", "identity", "zero"], 32, "latency", batch=4, length=16, reps=4)
    assert again == rec  # cached per machine and shape
    with pytest.raises(Exception, match="adabert.cost"):
        op_costs(OPS, 32, "watts")


def test_derive_top2_edges_and_depth_by_hand():
    ops = ["conv3", "maxpool3", "zero"]
    # 9 edges (node 0: states 0,1; node 1: 0,1,2; node 2: 0..3); zero never chosen
    logits = torch.full((9, 3), -5.0)
    logits[0, 2] = 9  # edge 0->node0: zero most likely, its best non-zero op is weak
    logits[0, 0] = -1
    logits[1, 1] = 3  # 1->node0 maxpool
    logits[2, 0], logits[3, 1], logits[4, 0] = 1, 4, 2  # node 1: edges from 0, 1, 2
    logits[5, 1], logits[6, 0], logits[7, 0], logits[8, 1] = 0, 0, 3, 5  # node 2: 0..3
    depth = torch.tensor([0.0, 2.0, 1.0])
    g = derive(logits, depth, 3, ops)
    assert g == {"cells": 2, "nodes": [[[0, "conv3"], [1, "maxpool3"]],
                                       [[1, "maxpool3"], [2, "conv3"]],
                                       [[2, "conv3"], [3, "maxpool3"]]]}


def test_derived_architecture_rebuilds_exactly_from_json(tmp_path):
    obj = _objective()
    torch.nn.init.normal_(obj.op_logits)
    geno = json.loads(json.dumps(obj.genotype()))
    torch.manual_seed(3)
    a = from_genotype(geno, _config()).eval()
    torch.manual_seed(3)
    b = from_genotype(geno, _config()).eval()
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    a.save_pretrained(tmp_path / "m")
    from transformers import AutoModelForSequenceClassification

    c = AutoModelForSequenceClassification.from_pretrained(tmp_path / "m").eval()
    assert c.config.genotype == geno and len(c.cells) == geno["cells"]
    ids = torch.tensor([[5, 6, 7, 8]])
    torch.testing.assert_close(c(ids).logits, a(ids).logits)
    # every node has exactly its kept edges, with their ops
    for cell in c.cells:
        assert [[[i, o] for i, o in node] for node in cell.spec] == geno["nodes"]


def test_teacher_layer_mapping_is_proportional():
    assert [teacher_layer(m, 3, 6) for m in (1, 2, 3)] == [2, 4, 6]
    assert [teacher_layer(m, 8, 6) for m in range(1, 9)] == [1, 2, 3, 3, 4, 5, 6, 6]
    assert teacher_layer(1, 1, 6) == 6


def test_probes_learn_and_weight_layers():
    torch.manual_seed(0)
    y = torch.randint(0, 2, (400,))
    signal = (y.float() * 2 - 1)[:, None]
    noise = torch.randn(400, 3, 8)
    x = noise.clone()
    x[:, 1, 0] += 3 * signal[:, 0]   # layer 1 separates the classes, layers 0 and 2 do not
    w, b = train_probes(x[:300], y[:300], 2, epochs=200, lr=0.05)
    logits = torch.einsum("njh,jhc->njc", x[300:], w) + b
    loss, acc = probe_losses(logits, y[300:])
    assert acc[1] > 0.9 and acc[0] < 0.7 and acc[2] < 0.7
    assert loss[1] < loss[0] and loss[1] < loss[2]
    lw = layer_weights(loss, [0, 1, 2])
    assert lw.argmax() == 1 and lw.sum() == pytest.approx(1.0)
