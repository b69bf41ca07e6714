"""Student builders (lmdistill.models.students): layer subset, smaller config, shared layers,
BiLSTM, parameter counts; save/load through hub.load_classifier."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from lmdistill.errors import ModelError
from lmdistill.models import hub
from lmdistill.models import students as S
from conftest import make_tiny_bert

N_T = 6  # teacher depth
SENTENCES = ["the movie was surprisingly good", "a dull , lifeless and overlong film"]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert-6"), layers=N_T, hidden=32, heads=2)


@pytest.fixture(scope="module")
def teacher(teacher_dir):
    torch.manual_seed(1)  # the fresh classification head
    model = hub.load_classifier(str(teacher_dir), num_labels=2).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def tok(teacher_dir):
    return hub.load_tokenizer(str(teacher_dir))


@pytest.fixture(scope="module")
def batch(tok):
    return tok(SENTENCES, padding=True, return_tensors="pt")


def layer(model, i):
    return model.bert.encoder.layer[i]


def assert_same_module(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def logits(model, batch, **kw):
    with torch.no_grad():
        return model(**batch, **kw).logits


# ------------------------------------------------------------------ count_params
def test_count_params_hand_computed():
    cfg = BertConfig(vocab_size=10, hidden_size=4, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=8, max_position_embeddings=6, type_vocab_size=2,
                     num_labels=3)
    model = BertForSequenceClassification(cfg)
    # embeddings: word 10·4=40 + position 6·4=24 + token type 2·4=8 + LayerNorm 2·4=8  = 80
    # layer: Q,K,V,attention-out 4·(4·4+4)=80 + LN 8 + FFN in 4·8+8=40 + FFN out 8·4+4=36
    #        + LN 8                                                                   = 172
    # pooler 4·4+4=20, classifier 4·3+3=15
    assert S.count_params(model) == 80 + 172 + 20 + 15 == 287
    assert S.count_params(model, without_embeddings=True) == 172 + 20 + 15 == 207


def test_count_params_bilstm_hand_computed():
    cfg = S.BiLSTMConfig(vocab_size=10, embedding_size=4, lstm_hidden=3, mlp_hidden=5,
                         num_labels=2)
    model = S.BiLSTMForSequenceClassification(cfg)
    # tables: words 10·4=40, segments 2·4=8
    # LSTM per direction: W_ih 4·3·4=48 + W_hh 4·3·3=36 + two biases 2·4·3=24 = 108, ×2 = 216
    # MLP: (2·3)·5+5=35, 5·2+2=12                                              = 47
    assert S.count_params(model) == 40 + 8 + 216 + 47 == 311
    # both embedding tables are left out (the segment table is an embedding table too)
    assert S.count_params(model, without_embeddings=True) == 216 + 47 == 263


def test_count_params_counts_shared_tensors_once():
    lin = nn.Linear(3, 2)  # 3·2+2 = 8
    model = nn.Module()
    model.a, model.b = lin, lin
    model.c = nn.Linear(2, 1)  # 2+1 = 3
    assert S.count_params(model) == 11


# ------------------------------------------------------------------ (a) layer subset
def test_layer_subset_copies_chosen_layers(teacher):
    student = S.layer_subset(teacher, [0, 2, 4])
    assert type(student) is type(teacher)
    assert student.config.num_hidden_layers == 3
    assert len(student.bert.encoder.layer) == 3
    assert teacher.config.num_hidden_layers == N_T  # the teacher's config is untouched
    for i, t in enumerate([0, 2, 4]):
        assert torch.equal(layer(student, i).attention.self.query.weight,
                           layer(teacher, t).attention.self.query.weight)
        assert_same_module(layer(student, i), layer(teacher, t))
        # not the teacher layer it came from
        if t != i:
            assert not torch.equal(layer(student, i).attention.self.query.weight,
                                   layer(teacher, i).attention.self.query.weight)
    assert_same_module(student.bert.embeddings, teacher.bert.embeddings)
    assert_same_module(student.bert.pooler, teacher.bert.pooler)
    assert_same_module(student.classifier, teacher.classifier)
    # copies, not the teacher's tensors
    assert (student.bert.embeddings.word_embeddings.weight.data_ptr()
            != teacher.bert.embeddings.word_embeddings.weight.data_ptr())


@pytest.mark.parametrize("layers", [[], [N_T], [-1], [0, 2, 7]])
def test_layer_subset_invalid_layers(teacher, layers):
    with pytest.raises(ModelError):
        S.layer_subset(teacher, layers)


def test_layer_subset_logits(teacher, batch):
    # a random tiny BERT's logits are small (~0.02: initializer_range head), so compare the
    # final hidden states for "different" and everything exactly for "the same"
    def run(model):
        with torch.no_grad():
            out = model.eval()(**batch, output_hidden_states=True)
        return out.logits, out.hidden_states

    t_logits, t_states = run(teacher)
    sub_logits, sub_states = run(S.layer_subset(teacher, [0, 2, 4]))
    assert len(sub_states) == 4
    assert not torch.equal(sub_logits, t_logits)
    assert (sub_states[-1] - t_states[-1]).abs().max() > 1e-2
    assert torch.equal(sub_states[1], t_states[1])  # layer 0 is the teacher's layer 0

    full_logits, full_states = run(S.layer_subset(teacher, list(range(N_T))))
    assert torch.equal(full_logits, t_logits)
    assert len(full_states) == N_T + 1
    assert all(torch.equal(a, b) for a, b in zip(full_states, t_states))

    rev_logits, rev_states = run(S.layer_subset(teacher, list(reversed(range(N_T)))))
    assert not torch.equal(rev_logits, t_logits)
    # random layers are near-identity (residual + small weights): reordering them is a
    # second-order change, still far above float noise
    assert (rev_states[-1] - t_states[-1]).abs().max() > 1e-3


# ------------------------------------------------------------------ (b) smaller
def test_smaller_config_applied(teacher, batch):
    student = S.smaller(teacher, num_layers_=3, hidden=16, heads=4, intermediate=24)
    c = student.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size) == \
        (3, 16, 4, 24)
    assert len(student.bert.encoder.layer) == 3
    assert layer(student, 0).attention.self.query.weight.shape == (16, 16)
    assert layer(student, 0).intermediate.dense.weight.shape == (24, 16)
    assert student.bert.embeddings.word_embeddings.weight.shape == (30522, 16)
    assert student.classifier.weight.shape == (2, 16)
    assert logits(student.eval(), batch).shape == (2, 2)
    assert teacher.config.hidden_size == 32 and teacher.config.num_hidden_layers == N_T


@pytest.mark.parametrize("n_s, expected", [
    (3, [1, 3, 5]),      # (i+1)·6/3 = 2, 4, 6 -> 0-based 1, 3, 5
    (4, [1, 2, 4, 5]),   # (i+1)·6/4 = 1.5, 3, 4.5, 6 -> half up 2, 3, 5, 6 -> 1, 2, 4, 5
    (2, [2, 5]),         # 3, 6 -> 2, 5
])
def test_smaller_teacher_init_uses_uniform_map(teacher, n_s, expected):
    from lmdistill.mapping import uniform

    # the same pairs the uniform layer mapping distils (1-based hidden states -> 0-based layers)
    assert [t - 1 for _, t in uniform(N_T, n_s, include_embeddings=False)] == expected
    student = S.smaller(teacher, num_layers_=n_s)  # same width: every tensor has a twin
    for i, t in enumerate(expected):
        assert_same_module(layer(student, i), layer(teacher, t))
    assert_same_module(student.bert.embeddings, teacher.bert.embeddings)
    assert_same_module(student.classifier, teacher.classifier)


def test_smaller_explicit_layers(teacher):
    student = S.smaller(teacher, num_layers_=2, layers=[0, 3])
    assert_same_module(layer(student, 0), layer(teacher, 0))
    assert_same_module(layer(student, 1), layer(teacher, 3))
    with pytest.raises(ModelError):
        S.smaller(teacher, num_layers_=2, layers=[0, 3, 5])  # wrong length
    with pytest.raises(ModelError):
        S.smaller(teacher, num_layers_=2, layers=[0, N_T])  # no such teacher layer


def test_smaller_teacher_init_copies_only_matching_shapes(teacher):
    student = S.smaller(teacher, num_layers_=3, intermediate=48)
    # attention is the same shape -> copied; the FFN is wider -> fresh
    assert_same_module(layer(student, 0).attention, layer(teacher, 1).attention)
    assert layer(student, 0).intermediate.dense.weight.shape == (48, 32)
    assert layer(student, 0).output.LayerNorm.weight.shape == (32,)
    assert torch.equal(layer(student, 0).output.LayerNorm.bias,
                       layer(teacher, 1).output.LayerNorm.bias)


def test_smaller_random_init_copies_nothing(teacher):
    student = S.smaller(teacher, num_layers_=3, init="random")
    t_sd, s_sd = teacher.state_dict(), student.state_dict()
    # weight matrices (LayerNorm/bias constants start equal in any fresh BERT)
    for key in ["bert.embeddings.word_embeddings.weight", "bert.pooler.dense.weight",
                "classifier.weight"] + [f"bert.encoder.layer.{i}.attention.self.query.weight"
                                        for i in range(3)]:
        assert not torch.equal(s_sd[key], t_sd[key]), key
    for i in range(3):
        for t in range(N_T):
            assert not torch.equal(layer(student, i).attention.self.query.weight,
                                   layer(teacher, t).attention.self.query.weight)


def test_smaller_errors(teacher):
    with pytest.raises(ModelError, match="divisible"):
        S.smaller(teacher, hidden=30, heads=4)
    with pytest.raises(ModelError, match="divisible"):
        S.smaller(teacher, heads=5)  # 32 % 5
    with pytest.raises(ModelError, match="init"):
        S.smaller(teacher, num_layers_=2, init="copy")


# ------------------------------------------------------------------ (c) shared layers
def test_shared_layers_parameter_count(teacher):
    shared = S.shared_layers(teacher, N_T, num_unique=1)
    assert isinstance(shared, S.SharedBertForSequenceClassification)
    assert shared.config.num_hidden_layers == N_T and shared.config.num_unique_layers == 1
    assert len(shared.bert.encoder.layer) == N_T
    one_layer = S.layer_subset(teacher, [0])
    assert S.count_params(shared) < S.count_params(teacher)
    assert S.count_params(shared) == S.count_params(one_layer)
    assert S.count_params(shared, True) == S.count_params(one_layer, True)
    assert S.count_params(S.shared_layers(teacher, N_T, num_unique=2)) == \
        S.count_params(S.layer_subset(teacher, [0, 1]))
    # and the optimiser sees each tensor once
    assert len(list(shared.parameters())) == len(list(one_layer.parameters()))


def test_shared_layers_copies_teacher_layers(teacher):
    shared = S.shared_layers(teacher, 4, num_unique=2, teacher_layers=[3, 5])
    assert_same_module(shared.bert.encoder.layer[0], layer(teacher, 3))
    assert_same_module(shared.bert.encoder.layer[1], layer(teacher, 5))
    assert_same_module(shared.bert.embeddings, teacher.bert.embeddings)
    assert_same_module(shared.classifier, teacher.classifier)
    default = S.shared_layers(teacher, 4, num_unique=1)
    assert_same_module(default.bert.encoder.layer[0], layer(teacher, 0))


def test_shared_layers_applied_repeatedly(teacher, batch):
    shared = S.shared_layers(teacher, N_T, num_unique=1).eval()
    applied = list(shared.bert.encoder.layer)
    assert len(applied) == N_T
    assert all(m is applied[0] for m in applied)
    two = list(S.shared_layers(teacher, 5, num_unique=2).bert.encoder.layer)
    assert [m is two[0] for m in two] == [True, False, True, False, True]
    assert two[1] is not two[0]

    ids = batch["input_ids"][:1]  # no padding, so no attention mask is needed
    with torch.no_grad():
        out = shared(input_ids=ids, output_hidden_states=True)
        states = out.hidden_states
        assert len(states) == N_T + 1
        for k in range(N_T):  # every state is the one shared layer applied to the previous one
            nxt = applied[0](states[k])
            nxt = nxt[0] if isinstance(nxt, tuple) else nxt
            torch.testing.assert_close(nxt, states[k + 1], rtol=0, atol=1e-5)
        assert not torch.allclose(states[1], states[2], atol=1e-4)


def test_shared_layers_gradients_reach_the_shared_layer(teacher, batch):
    shared = S.shared_layers(teacher, N_T, num_unique=1).train()
    loss = shared(**batch, labels=torch.tensor([1, 0])).loss
    loss.backward()
    grad = shared.bert.encoder.layer[0].attention.self.query.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert shared.bert.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_shared_layers_save_load_round_trip(teacher, batch, tmp_path):
    shared = S.shared_layers(teacher, N_T, num_unique=2).eval()
    shared.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    idx = {k.split(".")[3] for k in keys if k.startswith("bert.encoder.layer.")}
    assert idx == {"0", "1"}
    assert sum(k.startswith("bert.encoder.layer.") for k in keys) == \
        2 * sum(1 for _ in layer(teacher, 0).state_dict())

    loaded = hub.load_classifier(str(tmp_path), 2).eval()
    assert type(loaded) is S.SharedBertForSequenceClassification
    assert loaded.config.num_unique_layers == 2 and loaded.config.num_hidden_layers == N_T
    assert S.count_params(loaded) == S.count_params(shared)
    assert torch.equal(logits(loaded, batch), logits(shared, batch))


def test_shared_layers_errors(teacher):
    bilstm = S.bilstm(teacher, lstm_hidden=4, mlp_hidden=4)
    with pytest.raises(ModelError, match="BERT"):
        S.shared_layers(bilstm, 4)
    with pytest.raises(ModelError):
        S.shared_layers(teacher, 4, num_unique=0)
    with pytest.raises(ModelError):
        S.shared_layers(teacher, 4, num_unique=5)
    with pytest.raises(ModelError):
        S.shared_layers(teacher, 4, num_unique=2, teacher_layers=[0])
    with pytest.raises(ModelError):
        S.shared_layers(teacher, 4, num_unique=1, teacher_layers=[N_T])


# ------------------------------------------------------------------ (d) BiLSTM
def test_bilstm_embeddings_from_teacher(teacher, batch):
    student = S.bilstm(teacher, lstm_hidden=8, mlp_hidden=6)
    t_emb = teacher.bert.embeddings.word_embeddings.weight
    assert torch.equal(student.embeddings.weight, t_emb)
    assert student.embeddings.weight.data_ptr() != t_emb.data_ptr()
    assert student.embeddings.weight.requires_grad
    c = student.config
    assert (c.vocab_size, c.embedding_size, c.lstm_hidden, c.mlp_hidden, c.num_labels) == \
        (30522, 32, 8, 6, 2)
    assert student.lstm.hidden_size == 8 and student.lstm.bidirectional
    assert logits(student.eval(), batch).shape == (2, 2)


def test_bilstm_padding_invariance(teacher, tok):
    torch.manual_seed(0)
    student = S.bilstm(teacher, lstm_hidden=8, mlp_hidden=6).eval()
    short = SENTENCES[0]
    alone = tok([short], return_tensors="pt")
    n = alone["input_ids"].shape[1]
    base = logits(student, alone)
    # padded by the tokenizer next to a longer sentence
    padded = tok([short, SENTENCES[1] + " and far too long"], padding=True, return_tensors="pt")
    assert padded["input_ids"].shape[1] > n and padded["attention_mask"][0].sum() == n
    torch.testing.assert_close(logits(student, padded)[0], base[0], rtol=0, atol=1e-6)
    # explicit pad tokens on the single sequence
    pad = torch.full((1, 7), tok.pad_token_id)
    extra = {"input_ids": torch.cat([alone["input_ids"], pad], 1),
             "attention_mask": torch.cat([alone["attention_mask"], torch.zeros_like(pad)], 1)}
    torch.testing.assert_close(logits(student, extra), base, rtol=0, atol=1e-6)
    # the mask matters: the same tokens read as real tokens give other logits
    unmasked = {"input_ids": extra["input_ids"],
                "attention_mask": torch.ones_like(extra["attention_mask"])}
    assert not torch.allclose(logits(student, unmasked), base, atol=1e-4)


def test_bilstm_pair_input(teacher, tok):
    student = S.bilstm(teacher, lstm_hidden=8, mlp_hidden=6).eval()
    pair = tok(["a good film"], ["i liked it a lot"], return_tensors="pt")
    assert pair["token_type_ids"].sum() > 0
    out = logits(student, pair)
    assert out.shape == (1, 2) and torch.isfinite(out).all()
    # segment embeddings start at zero: no effect until trained ...
    no_types = {k: v for k, v in pair.items() if k != "token_type_ids"}
    assert torch.equal(out, logits(student, no_types))
    # ... and are used once they are not
    with torch.no_grad():
        student.segments.weight.normal_()
    assert not torch.allclose(logits(student, pair), out, atol=1e-4)
    # and they receive gradients from pair input
    student.train()
    student.zero_grad()
    y = student(**pair).logits.sum()
    y.backward()
    assert student.segments.weight.grad[1].abs().sum() > 0


def test_bilstm_save_load_round_trip(teacher, batch, tmp_path):
    student = S.bilstm(teacher, lstm_hidden=8, mlp_hidden=6).eval()
    student.save_pretrained(tmp_path)
    loaded = hub.load_classifier(str(tmp_path), 2).eval()
    assert type(loaded) is S.BiLSTMForSequenceClassification
    assert (loaded.config.lstm_hidden, loaded.config.mlp_hidden) == (8, 6)
    assert torch.equal(loaded.embeddings.weight, student.embeddings.weight)
    assert torch.equal(logits(loaded, batch), logits(student, batch))
    with pytest.raises(ModelError, match="2-label head"):
        hub.load_classifier(str(tmp_path), 3)


def test_bilstm_freeze_embeddings(teacher, batch):
    frozen = S.bilstm(teacher, lstm_hidden=8, mlp_hidden=6, freeze_embeddings=True).train()
    assert not frozen.embeddings.weight.requires_grad
    assert frozen.lstm.weight_ih_l0.requires_grad
    before_emb = frozen.embeddings.weight.clone()
    before_lstm = frozen.lstm.weight_ih_l0.detach().clone()
    opt = torch.optim.SGD([p for p in frozen.parameters() if p.requires_grad], lr=0.5)
    loss = nn.functional.cross_entropy(frozen(**batch).logits, torch.tensor([1, 0]))
    loss.backward()
    opt.step()
    assert frozen.embeddings.weight.grad is None
    assert torch.equal(frozen.embeddings.weight, before_emb)
    assert not torch.equal(frozen.lstm.weight_ih_l0, before_lstm)


# ------------------------------------------------------------------ real minilm-l6
def test_minilm_l6_parameter_counts():
    try:
        teacher = hub.load_classifier("minilm-l6", 2)
    except ModelError as e:
        pytest.skip(str(e))
    c = teacher.config
    h, f, v, p, t = (c.hidden_size, c.intermediate_size, c.vocab_size,
                     c.max_position_embeddings, c.type_vocab_size)
    assert (h, f, v, p, t, c.num_hidden_layers) == (384, 1536, 30522, 512, 2, 6)
    emb = v * h + p * h + t * h + 2 * h                       # tables + LayerNorm
    per_layer = 4 * (h * h + h) + 2 * h + (h * f + f) + (f * h + h) + 2 * h
    head = (h * h + h) + (h * 2 + 2)                          # pooler + classifier
    assert (emb, per_layer, head) == (11_918_592, 1_774_464, 148_610)
    assert S.count_params(teacher) == emb + 6 * per_layer + head == 22_713_986
    assert S.count_params(teacher, without_embeddings=True) == 6 * per_layer + head

    student = S.layer_subset(teacher, [0, 2, 4])
    assert S.count_params(student) == emb + 3 * per_layer + head == 17_390_594
    assert S.count_params(student, without_embeddings=True) == 3 * per_layer + head == 5_472_002
    assert torch.equal(layer(student, 1).attention.self.query.weight,
                       layer(teacher, 2).attention.self.query.weight)
    assert torch.equal(layer(student, 2).output.dense.weight, layer(teacher, 4).output.dense.weight)


def test_copy_head_takes_the_teachers_pooler_and_classifier(teacher, teacher_dir):
    """A student built from a headless base gets the teacher's head (pooler + classifier)
    where shapes match; its encoder layers stay its own; a narrower student gets nothing."""
    torch.manual_seed(5)
    student = S.layer_subset(hub.load_classifier(str(teacher_dir), num_labels=2), [1, 3])
    before = student.bert.encoder.layer[0].attention.self.query.weight.clone()
    names = S.copy_head(student, teacher)
    assert set(names) == {"classifier.weight", "classifier.bias", "bert.pooler.dense.weight",
                          "bert.pooler.dense.bias"}
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    assert torch.equal(student.bert.pooler.dense.weight, teacher.bert.pooler.dense.weight)
    assert torch.equal(student.bert.encoder.layer[0].attention.self.query.weight, before)
    narrow = S.smaller(teacher, 2, hidden=16, heads=2, intermediate=32, init="random")
    assert S.copy_head(narrow, teacher) == []


def test_new_head_keeps_the_encoder_and_starts_a_fresh_head(teacher, tmp_path):
    """A saved 2-label classifier fine-tuned on a 1-label (regression) task: refused without
    ``new_head``; with it the encoder is the saved one and the head is new (also for a task
    with the same number of labels)."""
    hub.save_model(teacher, tmp_path / "clf")
    with pytest.raises(ModelError, match="new_head"):
        hub.load_classifier(str(tmp_path / "clf"), num_labels=1)
    torch.manual_seed(9)
    reg = hub.load_classifier(str(tmp_path / "clf"), num_labels=1, new_head=True)
    assert reg.classifier.weight.shape == (1, teacher.config.hidden_size)
    assert reg.config.problem_type == "regression"
    for (k, a), (k2, b) in zip(reg.bert.state_dict().items(), teacher.bert.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    two = hub.load_classifier(str(tmp_path / "clf"), num_labels=2, label_names=["x", "y"],
                              new_head=True)
    assert two.config.id2label == {0: "x", 1: "y"}
    assert not torch.equal(two.classifier.weight, teacher.classifier.weight)
