"""Issue 26: bad settings refused when the config is built, and every loss a layer match
accepts is the loss computed."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch
from torch.testing import assert_close

from lmdistill import config as C
from lmdistill import losses as L
from lmdistill.errors import ConfigError
from lmdistill.mapping import LOSSES, LayerMatch
from lmdistill.methods.kd.objective import MATCH_LOSSES, KDObjective

BAD = [  # (config class, override, the field the one-line error must name)
    (C.DistillConfig, {"kd.alpha": -0.5}, "kd.alpha"),
    (C.DistillConfig, {"kd.alpha": 1.5}, "kd.alpha"),
    (C.DistillConfig, {"kd.alpha": "linear:0.2:1.3"}, "kd.alpha"),
    (C.DistillConfig, {"kd.temperature": 0}, "kd.temperature"),
    (C.DistillConfig, {"kd.temperature": -1}, "kd.temperature"),
    (C.DistillConfig, {"kd.temperature": "linear:4:-1"}, "kd.temperature"),
    (C.DistillConfig, {"kd.temperature": "wobbly"}, "kd.temperature"),
    (C.DistillConfig, {"kd.beta": -1}, "kd.beta"),
    (C.DistillConfig, {"kd.losses": {"hidden": "kl"}}, "kd.losses"),
    (C.DistillConfig, {"kd.feature_weights": {"hidden": -1}}, "kd.feature_weights"),
    (C.DistillConfig, {"train.lr": -1e-4}, "train.lr"),
    (C.DistillConfig, {"train.epochs": -1}, "train.epochs"),
    (C.DistillConfig, {"train.batch_size": 0}, "train.batch_size"),
    (C.DistillConfig, {"train.warmup_ratio": 1.5}, "train.warmup_ratio"),
    (C.DistillConfig, {"train.max_grad_norm": 0}, "train.max_grad_norm"),
    (C.DistillConfig, {"data.limit": 0}, "data.limit"),
    (C.DistillConfig, {"data.mlm_probability": 1.2}, "data.mlm_probability"),
    (C.DistillConfig, {"teacher.topk": 0}, "teacher.topk"),
    (C.DistillConfig, {"teacher.sharpness": 0}, "teacher.sharpness"),
    (C.DistillConfig, {"teacher.fixed_weights": [1, -1]}, "teacher.fixed_weights"),
    (C.DistillConfig, {"student.num_layers": 0}, "student.num_layers"),
    (C.DistillConfig, {"student.layers": [-1, 2]}, "student.layers"),
    (C.SearchConfig, {"adabert.beta": -1}, "adabert.beta"),
    (C.SearchConfig, {"adabert.arch_lr": 0}, "adabert.arch_lr"),
    (C.SearchConfig, {"adabert.arch_samples": 1}, "adabert.arch_samples"),
    (C.SearchConfig, {"adabert.arch_gradient": "reinforce"}, "adabert.arch_gradient"),
    (C.SearchConfig, {"adabert.warmup_forward": "mixed"}, "adabert.warmup_forward"),
    (C.SearchConfig, {"retrain.lr": -1}, "retrain.lr"),
    (C.MetaKDConfig, {"metakd.stage2_epochs": 0}, "metakd.stage2_epochs"),
    (C.MetaKDConfig, {"teacher_train.lr": -1}, "teacher_train.lr"),
    (C.L2AConfig, {"l2a.selector_lr": 0}, "l2a.selector_lr"),
    (C.L2AConfig, {"kd.alpha": 2}, "kd.alpha"),
    (C.LexicalKDConfig, {"lexical.kd_weight": -1}, "lexical.kd_weight"),
    (C.LexicalKDConfig, {"lexical.sense_weight": "linear:1:-1"}, "lexical.sense_weight"),
    (C.LexicalKDConfig, {"lexical.temperature": 0}, "lexical.temperature"),
    (C.LexicalKDConfig, {"lexical.kd_weight": 0}, "lexical"),  # and sense_weight 0: nothing
    (C.LexicalKDConfig, {"lexical.kd_loss": "kl"}, "lexical.kd_loss"),
    (C.LexicalKDConfig, {"lexical.table_lr": 0}, "lexical.table_lr"),
    (C.LexicalKDConfig, {"data.limit": 0}, "data.limit"),
]


@pytest.mark.parametrize("cls,override,field", BAD, ids=[f"{f}={v}" for _, o, f in BAD
                                                         for v in o.values()])
def test_a_bad_setting_is_refused_when_the_config_is_built(cls, override, field):
    with pytest.raises(ConfigError, match=f"'{field}") as e:
        C.build(cls, overrides=override)
    assert "\n" not in str(e.value)


def test_good_settings_still_build():
    c = C.build(C.DistillConfig, overrides={"kd.alpha": "linear:0:1", "kd.temperature": "auto",
                                            "kd.beta": 0, "kd.losses": {"hidden": "cosine"}})
    assert (c.kd.alpha, c.kd.temperature, c.kd.losses) == ("linear:0:1", "auto",
                                                           {"hidden": "cosine"})
    C.build(C.DistillConfig, overrides={"kd.temperature": {"kind": "cosine", "start": 4,
                                                           "end": 1}})
    c = C.build(C.LexicalKDConfig, overrides={"lexical.kd_weight": 0, "lexical.sense_weight":
                                              "linear:0:1", "lexical.temperature": 0.05})
    assert (c.lexical.kd_weight, c.lexical.sense_weight) == (0, "linear:0:1")


def test_cli_refuses_a_bad_alpha_before_loading_anything(capsys):
    """Before: the teacher (here a folder that does not exist) was loaded first and the run
    failed on it; kd.alpha was only checked when the objective was built."""
    from lmdistill.cli import main

    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as e:
        main(["distill", "--task", "sst2", "--teacher", "/nonexistent/teacher",
              "-o", "kd.alpha=-0.5"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2
    assert "kd.alpha" in err and len(err.splitlines()) == 1, err
    assert time.perf_counter() - t0 < 10


def test_every_match_loss_is_the_loss_computed(tiny_bert):
    """Before: ``kd.losses={hidden: cosine}`` was accepted and trained with MSE."""
    from transformers import AutoModelForSequenceClassification

    assert set(MATCH_LOSSES) == {(f, loss) for f, names in LOSSES.items() for loss in names}
    g = torch.Generator().manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])

    def feats():
        return SimpleNamespace(
            hidden={1: torch.randn(2, 5, 8, generator=g)},
            attention={1: torch.randn(2, 2, 5, 5, generator=g).softmax(-1)},
            value={1: torch.randn(2, 5, 8, generator=g)})

    s, t = feats(), feats()
    student = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)
    obj = KDObjective(student, teacher=None)
    reference = {
        ("hidden", "mse"): L.hidden_mse_loss(s.hidden[1], t.hidden[1], mask),
        ("hidden", "cosine"): L.cosine_embedding_loss(s.hidden[1], t.hidden[1], mask),
        ("cosine", "cosine"): L.cosine_embedding_loss(s.hidden[1], t.hidden[1], mask),
        ("attention", "kl"): L.attention_kl_loss(s.attention[1], t.attention[1], mask),
        ("attention", "mse"): L.attention_mse_loss(s.attention[1], t.attention[1], mask),
        ("value_relation", "kl"): L.value_relation_loss(s.value[1], t.value[1], mask, 2),
    }
    obj.relation_heads = 2
    values = {}
    for (feature, loss), want in reference.items():
        m = LayerMatch(1, 1, feature, loss=loss)
        values[feature, loss] = got = obj._match_loss(m, s, t, mask)
        assert_close(got, want)
    assert abs(values["hidden", "mse"] - values["hidden", "cosine"]) > 1e-3


def test_every_rank_resumes_its_own_rng_stream(tmp_path):
    """Before: only rank 0's RNG states were saved, and every rank resumed rank 0's stream
    (on GPUs: every rank's dropout masks after a resume were rank 0's)."""
    from lmdistill.train import checkpoint as ckpt

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(1)
    rank0 = ckpt.rng_state()
    torch.manual_seed(2)
    rank1 = ckpt.rng_state()
    path = ckpt.save_checkpoint(tmp_path, 3, model, opt, None, {"trainer": {}},
                                rank_rng=[rank0, rank1])
    draws = {}
    for rank in (0, 1, 2):  # rank 2: a checkpoint written by 2 processes -> rank 0's states
        torch.manual_seed(99)
        ckpt.load_checkpoint(path, model, opt, None, rank=rank)
        draws[rank] = torch.rand(3)
    torch.manual_seed(1)
    assert torch.equal(draws[0], torch.rand(3))
    torch.manual_seed(2)
    assert torch.equal(draws[1], torch.rand(3))
    assert torch.equal(draws[2], draws[0])


# ------------------------------------------------------------------ devices
#: what a training step runs: a tensor made in these without ``device=`` lands on the CPU while
#: the batch is on the GPU (AdaBERT's training_step multiplied the depth logits by a CPU arange)
STEP_FUNCTIONS = {"forward", "training_step", "collate", "__call__", "compute", "search_loss",
                  "predict", "on_step_begin", "_match_loss", "sample", "step_loss"}
FACTORIES = {"arange", "zeros", "ones", "full", "eye", "randperm", "rand", "randn", "randint",
             "empty", "linspace", "tensor", "as_tensor"}


def test_no_step_makes_a_tensor_without_a_device():
    import ast
    from pathlib import Path

    import lmdistill

    root = Path(lmdistill.__file__).parent
    bad = []
    for part in ("methods", "teachers", "losses", "augment", "train"):
        for path in sorted((root / part).rglob("*.py")):
            for fn in ast.walk(ast.parse(path.read_text())):
                if not isinstance(fn, ast.FunctionDef) or fn.name not in STEP_FUNCTIONS:
                    continue
                for node in ast.walk(fn):
                    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                            and node.func.attr in FACTORIES
                            and getattr(node.func.value, "id", None) == "torch"
                            and not any(k.arg == "device" for k in node.keywords)):
                        bad.append(f"{path.relative_to(root)}:{node.lineno} in {fn.name}")
    assert not bad, bad


def test_adabert_step_figures_stay_on_the_logits_device():
    """The pieces of AdaBERT's search step, on the meta device (a GPU in real runs): a CPU
    tensor anywhere in them fails here as it failed on CUDA."""
    from lmdistill.methods.adabert.objective import efficiency_loss, expected_depth

    depth = torch.randn(4).to("meta")
    assert expected_depth(depth).device.type == "meta"
    ops = torch.randn(6, 10).softmax(-1).to("meta")
    costs = torch.rand(10).to("meta")
    assert efficiency_loss(ops, depth.softmax(0), costs).device.type == "meta"
    # and the value, on the CPU, against the hand-computed expectation
    d = torch.tensor([0.0, 0.0, 0.0])  # uniform over depths 1, 2, 3: E[K] = 2
    assert float(expected_depth(d)) == pytest.approx(2.0)
