"""Teacher signals (lmdistill.teachers) and the KD objective (lmdistill.methods.kd.objective)
on real SST-2 / MRPC rows with a tiny random BERT that uses the real minilm tokenizer."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from lmdistill import losses as L
from lmdistill import teachers as T
from lmdistill.data.collate import collate, encode
from lmdistill.data.tasks import get_task
from lmdistill.errors import ConfigError, ModelError
from lmdistill.mapping import Projections, build_matches, resolve_mapping
from lmdistill.methods.kd import calibration as KC
from lmdistill.methods.kd.objective import KDObjective, needs_of
from lmdistill.methods.kd.setup import hf_callable, same_vocab
from lmdistill.models import hub
from lmdistill.models import students as S

EXACT = dict(atol=1e-6, rtol=0.0)  # observed max |cached - online| ~2.4e-7 (hidden layer 2)
NEEDS = T.Needs(hidden=(0, 2), attention=(1,), value=(2,))


# ------------------------------------------------------------------ a teacher with its own tokenizer
def word_tokenizer(sentences):
    """A word-level tokenizer trained on ``sentences`` (vocabulary unrelated to BERT's)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    tk.train_from_iterator(sentences, trainers.WordLevelTrainer(special_tokens=special))
    cls, sep = tk.token_to_id("[CLS]"), tk.token_to_id("[SEP]")
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]")


def word_teacher(sentences, num_labels: int = 2, seed: int = 0, max_length: int = 64):
    """(fn, tokenizer, model): a tiny random BERT classifier on a word-level vocabulary, as a
    ``texts -> logits`` callable (``run.hf_callable``)."""
    from transformers import BertConfig, BertForSequenceClassification

    tok = word_tokenizer(sentences)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=128,
                     num_labels=num_labels, pad_token_id=tok.pad_token_id)
    model = BertForSequenceClassification(cfg).eval()
    return hf_callable(model, tok, max_length), tok, model


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def tok(tiny_bert):
    return hub.load_tokenizer(str(tiny_bert))


@pytest.fixture(scope="module")
def sst2_examples():
    return get_task("sst2").load("train", limit=48, seed=0)


@pytest.fixture(scope="module")
def enc(sst2_examples, tok):
    return encode(sst2_examples, tok, 64)


@pytest.fixture(scope="module")
def mrpc_enc(tok):
    return encode(get_task("mrpc").load("train", limit=12, seed=0), tok, 64)


def classifier(path, seed=0):
    torch.manual_seed(seed)  # the fresh classification head
    return hub.load_classifier(str(path), 2)


# batches that differ from the cache's own (length-sorted, 16 per batch) batches
BATCHES = [list(range(0, 13)), list(range(13, 48, 2)), [47, 5, 0, 30], list(range(14, 48, 2))]


# ------------------------------------------------------------------ cached == online
def test_cached_teacher_equals_online(tiny_bert, enc, tmp_path):
    model = classifier(tiny_bert)
    cached = T.CachedTeacher(model, enc, NEEDS, tmp_path, batch_size=16, progress=False)
    assert not cached.hit
    online = T.OnlineTeacher(model, NEEDS)
    assert len(set(enc.lengths)) > 5  # real lengths: every batch is padded
    for b in BATCHES:
        batch = collate(enc, b)
        c, o = cached(batch), online(batch)
        m = batch["attention_mask"].bool()                     # [B, L]
        pad = ~m
        assert_close(c.logits, o.logits, **EXACT)
        assert set(c.hidden) == {0, 2} and set(c.attention) == {1} and set(c.value) == {2}
        for layer in (0, 2):
            h_c, h_o = c.hidden[layer], o.hidden[layer]
            assert h_c.shape == h_o.shape == (len(b), m.shape[1], 32)
            assert_close(h_c[m], h_o[m], **EXACT)
            assert torch.all(h_c[pad] == 0)
        a_c, a_o = c.attention[1], o.attention[1]
        assert a_c.shape == a_o.shape == (len(b), 2, m.shape[1], m.shape[1])
        pair = m[:, None, :, None] & m[:, None, None, :]       # valid query AND valid key
        pair = pair.expand_as(a_c)
        assert_close(a_c[pair], a_o[pair], **EXACT)
        assert torch.all(a_c[~pair] == 0)
        # rows of real tokens are distributions over the real tokens
        assert_close(a_c.sum(-1)[m[:, None, :].expand(-1, 2, -1)],
                     torch.ones(int(m.sum()) * 2), atol=1e-5, rtol=0)
        v_c, v_o = c.value[2], o.value[2]
        assert_close(v_c[m], v_o[m], **EXACT)
        assert torch.all(v_c[pad] == 0)
        # online padded positions are not zero: the zeros are the cache's doing
        if pad.any():
            assert h_o[pad].abs().sum() > 0
    # and both are what the model computes: hidden_states[i], attentions[i - 1], and layer i's
    # value projection applied to its input hidden_states[i - 1]
    batch = collate(enc, BATCHES[0])
    c = cached(batch)
    m = batch["attention_mask"].bool()
    with torch.no_grad():
        ref = model(**{k: batch[k] for k in T.MODEL_INPUTS if k in batch},
                    output_hidden_states=True, output_attentions=True)
        value2 = model.bert.encoder.layer[1].attention.self.value(ref.hidden_states[1])
    assert_close(c.logits, ref.logits, **EXACT)
    assert_close(c.hidden[0][m], ref.hidden_states[0][m], **EXACT)
    assert_close(c.hidden[2][m], ref.hidden_states[2][m], **EXACT)
    assert_close(c.value[2][m], value2[m], **EXACT)
    pair = (m[:, None, :, None] & m[:, None, None, :]).expand_as(c.attention[1])
    assert_close(c.attention[1][pair], ref.attentions[0][pair], **EXACT)
    assert not torch.allclose(c.value[2][m], model.bert.encoder.layer[0].attention.self.value(
        ref.hidden_states[0])[m].detach(), atol=1e-3)


def test_cache_hit_skips_the_model_and_key_tracks_weights(tiny_bert, enc, tmp_path,
                                                         monkeypatch):
    model = classifier(tiny_bert)
    first = T.CachedTeacher(model, enc, NEEDS, tmp_path, batch_size=16, progress=False)
    assert not first.hit and first.computed == len(enc)
    assert len(list(first.path.glob("shard-*.json"))) == 1
    assert not list(tmp_path.rglob("*.tmp*"))  # the temporary files were renamed

    def boom(*a, **k):
        raise AssertionError("the teacher model ran on a cache hit")

    monkeypatch.setattr(model, "forward", boom)
    second = T.CachedTeacher(model, enc, NEEDS, tmp_path, batch_size=16, progress=False)
    assert second.hit and second.key == first.key
    batch = collate(enc, BATCHES[1])
    a, b = first(batch), second(batch)
    assert torch.equal(a.logits, b.logits)
    assert torch.equal(a.attention[1], b.attention[1])
    monkeypatch.undo()

    # same weights, new object: same key; one tensor perturbed: a different key (a miss)
    assert T.fingerprint_model(classifier(tiny_bert)) == T.fingerprint_model(model)
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.classifier.bias[0] += 1e-3
    assert T.fingerprint_model(other) != T.fingerprint_model(model)
    third = T.CachedTeacher(other, enc, NEEDS, tmp_path, batch_size=16, progress=False)
    assert not third.hit and third.key != first.key
    assert_close(third(batch).logits[:, 0], a.logits[:, 0] + 1e-3, atol=1e-6, rtol=0)
    # other needs or other data: other keys
    assert T.CachedTeacher(model, enc, T.Needs(), tmp_path, progress=False).key != first.key
    sub = encode([e for e in get_task("sst2").load("train", limit=48, seed=0)][:40],
                 hub.load_tokenizer(str(tiny_bert)), 64)
    # examples are keyed by their own token ids: a subset shares its rows' keys, other rows
    # have other keys
    assert [T.example_key(sub, i) for i in range(40)] == [T.example_key(enc, i) for i in range(40)]
    assert T.example_key(enc, 40) not in {T.example_key(sub, i) for i in range(40)}


def test_cache_is_per_example_added_rows_cost_only_themselves(tiny_bert, tok, tmp_path,
                                                              monkeypatch):
    """Rows 0..29 cached; then rows 20..47 (plus augmented text): the teacher runs on the 18
    rows and 2 texts it has not seen, and every row equals a fresh online pass."""
    from lmdistill.data.tasks import Example

    model = classifier(tiny_bert)
    rows = get_task("sst2").load("train", limit=48, seed=0)
    T.CachedTeacher(model, encode(rows[:30], tok, 64), NEEDS, tmp_path, progress=False)
    seen = []
    real_forward = model.forward

    def counting(*a, **k):
        seen.append(k["input_ids"].shape[0])
        return real_forward(*a, **k)

    monkeypatch.setattr(model, "forward", counting)
    extra = [Example("a brand new augmented sentence", None, None, -1),
             Example("another one", None, None, -2)]
    enc2 = encode(rows[20:] + extra, tok, 64)
    c = T.CachedTeacher(model, enc2, NEEDS, tmp_path, progress=False)
    assert not c.hit and c.computed == 18 + 2 and sum(seen) == 20
    assert len(list(c.path.glob("shard-*.json"))) == 2
    monkeypatch.undo()
    online = T.OnlineTeacher(model, NEEDS)
    for b in (list(range(0, 12)), list(range(12, len(enc2)))):
        batch = collate(enc2, b)
        m = batch["attention_mask"].bool()
        got, want = c(batch), online(batch)
        assert_close(got.logits, want.logits, **EXACT)
        assert_close(got.hidden[2][m], want.hidden[2][m], **EXACT)
    # all of it cached now: a third pass computes nothing
    assert T.CachedTeacher(model, enc2, NEEDS, tmp_path, progress=False).hit


def test_corrupt_cache_shard_is_one_clear_error(tiny_bert, enc, tmp_path):
    model = classifier(tiny_bert)
    c = T.CachedTeacher(model, enc, T.Needs(), tmp_path, progress=False)
    shard = next(c.path.glob("shard-*.json"))
    shard.write_text("{not json")
    with pytest.raises(ConfigError, match="corrupt.*delete"):
        T.CachedTeacher(model, enc, T.Needs(), tmp_path, progress=False)


def test_token_level_cache_with_topk(tiny_bert, tok, tmp_path):
    """A masked-LM teacher ([B, L, V] logits): top-k per real token, and the distributions
    rebuilt from them match the teacher's top-k renormalised."""
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    mlm = BertForMaskedLM.from_pretrained(str(tiny_bert)).eval()
    enc = encode(get_task("sst2").load("train", limit=8, seed=1), tok, 32)
    c = T.CachedTeacher(mlm, enc, T.Needs(), tmp_path, topk=5, progress=False)
    batch = collate(enc, list(range(8)))
    out = c(batch)
    m = batch["attention_mask"].bool()
    with torch.no_grad():
        full = mlm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    v, ix = full.topk(5, dim=-1)
    assert out.logits is None and out.topk_values.shape == (8, m.shape[1], 5)
    assert_close(out.topk_values[m], v[m], **EXACT)
    assert torch.equal(out.topk_indices[m].long(), ix[m])
    assert torch.isinf(out.topk_values[~m]).all()
    p = T.topk_probs(out.topk_values[m], out.topk_indices[m], full.shape[-1], temperature=2.0)
    want = torch.zeros_like(full[m]).scatter_(-1, ix[m], (v[m] / 2).softmax(-1))
    assert_close(p, want, atol=1e-6, rtol=0)
    assert T.CachedTeacher(mlm, enc, T.Needs(), tmp_path, topk=5, progress=False).hit


def test_topk_cache_keeps_the_tail_mass_and_the_gold_token(tiny_bert, tok, tmp_path):
    """Issue 31: the cached top-k soft target is not renormalised over k. Against the online
    teacher on the same batch: every kept token and the gold (target) token have their exact
    probability, wherever gold ranks; the distribution sums to 1; at τ 2 it is far closer to
    the teacher's than the renormalised top-k, which gives gold ~0 when it is outside the top-k."""
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    mlm = BertForMaskedLM.from_pretrained(str(tiny_bert)).eval()
    enc = encode(get_task("sst2").load("train", limit=8, seed=1), tok, 32)
    targets = [list(reversed(ids)) for ids in enc.input_ids]  # any token per position
    c = T.CachedTeacher(mlm, enc, T.Needs(), tmp_path, topk=5, progress=False, targets=targets)
    batch = collate(enc, list(range(8)))
    out = c(batch)
    m = batch["attention_mask"].bool()
    with torch.no_grad():
        full = mlm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    tgt = torch.zeros_like(batch["input_ids"])
    for r, t in enumerate(targets):
        tgt[r, :len(t)] = torch.tensor(t)
    V, gold = full.shape[-1], tgt[m]
    online = full[m].softmax(-1)
    p = T.topk_probs(out.topk_values[m], out.topk_indices[m], V, logz=out.topk_logz[m],
                     target_logit=out.topk_target[m], target_ids=gold)
    assert_close(p.sum(-1), torch.ones(len(p)), atol=1e-5, rtol=0)
    ix = out.topk_indices[m].long()
    assert_close(p.gather(-1, ix), online.gather(-1, ix), atol=1e-6, rtol=1e-4)
    assert_close(p.gather(-1, gold[:, None]), online.gather(-1, gold[:, None]), atol=1e-7,
                 rtol=1e-4)
    outside = ~(ix == gold[:, None]).any(-1)
    assert outside.sum() > 10  # the case the renormalised cache got wrong
    old = T.topk_probs(out.topk_values[m], out.topk_indices[m], V)
    assert (old.gather(-1, gold[:, None])[outside] == 0).all()

    def kl(a, b):
        return (a * (a.clamp_min(1e-30).log() - b.clamp_min(1e-30).log())).sum(-1).mean()

    on2 = (full[m] / 2).softmax(-1)
    new2 = T.topk_probs(out.topk_values[m], ix, V, 2.0, out.topk_logz[m], out.topk_target[m],
                        gold)
    old2 = T.topk_probs(out.topk_values[m], ix, V, 2.0)
    assert kl(on2, new2) < 0.2 * kl(on2, old2)
    assert T.CachedTeacher(mlm, enc, T.Needs(), tmp_path, topk=5, progress=False,
                           targets=targets).hit


# ------------------------------------------------------------------ teacher_weights / mix
LN3, LN9 = math.log(3), math.log(9)
# teacher 0: p = [.75, .25] on ex0, [.5, .5] on ex1; teacher 1: [.5, .5] and [.1, .9]
TWO = torch.tensor([[[LN3, 0.0], [0.0, 0.0]],
                    [[0.0, 0.0], [0.0, LN9]]])


def test_weights_uniform_confidence_entropy_fixed():
    assert_close(T.teacher_weights(TWO, "uniform"), torch.full((2, 2), 0.5))
    assert_close(T.teacher_weights(TWO, "confidence"),
                 torch.tensor([[0.75 / 1.25, 0.5 / 1.25], [0.5 / 1.4, 0.9 / 1.4]]))

    def e(p):  # exp(-H(p)) = prod p_c^p_c
        return math.prod(x ** x for x in p)

    r0 = [e([.75, .25]), e([.5, .5])]
    r1 = [e([.5, .5]), e([.1, .9])]
    want = torch.tensor([[r0[0] / sum(r0), r0[1] / sum(r0)], [r1[0] / sum(r1), r1[1] / sum(r1)]])
    assert_close(T.teacher_weights(TWO, "entropy"), want)
    assert T.teacher_weights(TWO, "entropy")[1, 1] > 0.5  # the sharper teacher counts more
    assert_close(T.teacher_weights(TWO, "fixed", fixed=[3, 1]),
                 torch.tensor([[0.75, 0.25], [0.75, 0.25]]))
    assert_close(T.teacher_weights(TWO, "fixed", fixed=[0, 2]),
                 torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    for bad in ([-1, 2], [0, 0], [-1, -1], [float("nan"), 1]):  # used to give NaN or clamp
        with pytest.raises(ConfigError, match="finite weights >= 0 with a positive sum"):
            T.teacher_weights(TWO, "fixed", fixed=bad)
    # sharpness 2: squared scores
    assert_close(T.teacher_weights(TWO, "confidence", sharpness=2.0)[0],
                 torch.tensor([0.5625 / 0.8125, 0.25 / 0.8125]))
    # sharpness where every teacher gives the gold token a tiny probability: p**4 underflows
    # float32 (used to give 0/0 = NaN at step 1); the weights stay finite and keep the ratio
    tiny = torch.tensor([[[0.0, 60.0]], [[0.0, 58.0]]])  # p(gold=0) ~ e^-60 and ~ e^-58
    w = T.teacher_weights(tiny, "gold", torch.tensor([0]), sharpness=4.0)
    assert torch.isfinite(w).all() and abs(float(w.sum()) - 1) < 1e-6
    assert_close(w[0], torch.tensor([1 / (1 + math.exp(8)), 1 / (1 + math.exp(-8))]), rtol=1e-3, atol=1e-6)
    with pytest.raises(ConfigError, match="fixed"):
        T.teacher_weights(TWO, "fixed")
    with pytest.raises(ConfigError, match="2 weights"):
        T.teacher_weights(TWO, "fixed", fixed=[1, 2, 3])
    with pytest.raises(ConfigError, match="unknown teacher weighting"):
        T.teacher_weights(TWO, "loudest")
    # a batch with no labels at all (only augmented text): gold is confidence there
    assert_close(T.teacher_weights(TWO, "gold"), T.teacher_weights(TWO, "confidence"))


def test_weights_gold_hand_computed():
    w = T.teacher_weights(TWO, "gold", labels=torch.tensor([1, 0]))
    # ex0: p_k(1) = .25, .5 ; ex1: p_k(0) = .5, .1
    assert_close(w, torch.tensor([[1 / 3, 2 / 3], [5 / 6, 1 / 6]]))


def test_weights_gold_prefers_the_right_teacher_and_falls_back_to_confidence():
    g = torch.Generator().manual_seed(0)
    B, C = 10, 3
    y = torch.randint(0, C, (B,), generator=g)
    right = 3.0 * torch.nn.functional.one_hot(y, C).float()
    wrong = 5.0 * torch.nn.functional.one_hot((y + 1) % C, C).float()  # and more confident
    logits = torch.stack([right, wrong])
    w = T.teacher_weights(logits, "gold", labels=y)
    assert w.shape == (B, 2)
    assert_close(w.sum(-1), torch.ones(B))
    assert torch.all(w[:, 0] > w[:, 1])
    conf = T.teacher_weights(logits, "confidence")
    assert torch.all(conf[:, 1] > conf[:, 0])  # confidence alone would trust the wrong one
    labels = y.clone()
    labels[[2, 7]] = -100  # unlabelled (augmented) rows
    w2 = T.teacher_weights(logits, "gold", labels=labels)
    assert_close(w2[[2, 7]], conf[[2, 7]])
    keep = [i for i in range(B) if i not in (2, 7)]
    assert_close(w2[keep], w[keep])
    assert_close(w2.sum(-1), torch.ones(B))


def test_weights_regression_gold():
    preds = torch.tensor([[[1.0], [3.0], [0.0]],    # teacher 0
                          [[2.0], [2.0], [5.0]]])   # teacher 1
    labels = torch.tensor([1.0, 2.5, float("nan")])
    w = T.teacher_weights(preds, "gold", labels=labels, regression=True)
    e1 = math.exp(-1.0)
    assert_close(w, torch.tensor([[1 / (1 + e1), e1 / (1 + e1)], [0.5, 0.5], [0.5, 0.5]]))
    assert_close(T.teacher_weights(preds, "uniform", labels=labels, regression=True),
                 torch.full((3, 2), 0.5))
    for s in ("confidence", "entropy"):  # used to become uniform silently
        with pytest.raises(ConfigError, match="regression task has none"):
            T.teacher_weights(preds, s, labels=labels, regression=True)
        with pytest.raises(ConfigError, match="regression task has none"):
            T.MultiTeacher([T.TeacherSignal(), T.TeacherSignal()], s, regression=True)


def test_weights_per_token_for_masked_lm():
    """[K, B, L, V] teacher logits -> one weight vector per token [B, L, K]; gold per token,
    confidence where the token has no label (−100); the mixture is [B, L, V]."""
    g = torch.Generator().manual_seed(1)
    K, B, Lq, V = 3, 2, 5, 7
    logits = torch.randn(K, B, Lq, V, generator=g)
    labels = torch.randint(0, V, (B, Lq), generator=g)
    labels[0, 1] = labels[1, 4] = -100
    w = T.teacher_weights(logits, "gold", labels=labels)
    assert w.shape == (B, Lq, K)
    p = logits.softmax(-1)
    for b in range(B):
        for i in range(Lq):
            y = labels[b, i].item()
            score = p[:, b, i].max(-1).values if y < 0 else p[:, b, i, y]
            assert_close(w[b, i], score / score.sum())
    for s in ("uniform", "confidence", "entropy", "fixed"):
        assert T.teacher_weights(logits, s, fixed=[1, 1, 2]).shape == (B, Lq, K)
    probs = T.mix(logits, w, temperature=2.0)
    assert probs.shape == (B, Lq, V)
    want = sum(w[..., k, None] * (logits[k] / 2).softmax(-1) for k in range(K))
    assert_close(probs, want)
    assert_close(probs.sum(-1), torch.ones(B, Lq))


def test_mix_two_teachers_at_temperature_2():
    # softmax(t0 / 2) = [.75, .25]; softmax(t1 / 2) = [.2, .8]
    t0 = torch.tensor([2 * LN3, 0.0])
    t1 = torch.tensor([0.0, 2 * math.log(4)])
    logits = torch.stack([torch.stack([t0, t0]), torch.stack([t1, t1])])  # [K=2, B=2, C=2]
    w = torch.tensor([[0.5, 0.5], [0.25, 0.75]])
    p = T.mix(logits, w, temperature=2.0)
    assert_close(p, torch.tensor([[0.475, 0.525], [0.3375, 0.6625]]))
    assert_close(T.mix(logits, w, temperature=1.0)[0],
                 0.5 * torch.softmax(t0, -1) + 0.5 * torch.softmax(t1, -1))
    reg = torch.tensor([[[1.0], [4.0]], [[3.0], [0.0]]])
    assert_close(T.mix(reg, w, regression=True), torch.tensor([[2.0], [1.0]]))


def test_multi_teacher_combines_signals(enc):
    rows = {i: torch.randn(2, generator=torch.Generator().manual_seed(i)) for i in range(len(enc))}
    fa = lambda texts: torch.stack([torch.tensor([len(t), 0.0]) for t in texts]) / 50  # noqa: E731
    a = T.CallableTeacher(fa, enc)

    class Fixed(T.TeacherSignal):
        def __call__(self, batch):
            return T.TeacherOut(logits=torch.stack([rows[i] for i in batch["index"].tolist()]))

    mt = T.MultiTeacher([a, Fixed()], "gold")
    assert mt.num_teachers == 2
    batch = collate(enc, BATCHES[2])
    out = mt(batch)
    assert out.logits.shape == (2, 4, 2)
    # by hand: each teacher's softmax probability of the gold label, normalised per row
    for r, i in enumerate(BATCHES[2]):
        y = int(batch["labels"][r])
        pa = torch.tensor([len(enc.texts[i][0]), 0.0]).div(50).softmax(-1)[y]
        pb = rows[i].softmax(-1)[y]
        assert_close(out.logits[0, r], torch.tensor([len(enc.texts[i][0]) / 50, 0.0]))
        assert_close(out.logits[1, r], rows[i])
        assert_close(out.weights[r], torch.stack([pa, pb]) / (pa + pb))
    with pytest.raises(ConfigError, match="unknown teacher weighting"):
        T.MultiTeacher([a, Fixed()], "loudest")
    feat = T.TeacherSignal()
    feat.needs = T.Needs(hidden=(1,))
    with pytest.raises(ConfigError, match="several teachers"):
        T.MultiTeacher([a, feat])


# ------------------------------------------------------------------ bring-your-own teacher
def test_callable_teacher_with_its_own_tokenizer(enc, sst2_examples, tok):
    fn, wtok, wmodel = word_teacher([e.text_a for e in sst2_examples])
    assert not same_vocab(wtok, tok)
    seen = []

    def recording(texts):
        seen.append(list(texts))
        return fn(texts)

    teacher = T.CallableTeacher(recording, enc)
    b = [30, 2, 17, 9, 41]
    out = teacher(collate(enc, b))
    assert seen == [[sst2_examples[i].text_a for i in b]]
    assert out.logits.shape == (5, 2) and out.logits.dtype == torch.float32
    # the same logits as the word-level model on each sentence alone (no padding)
    with torch.no_grad():
        one = torch.cat([wmodel(**wtok([sst2_examples[i].text_a], return_tensors="pt")).logits
                         for i in b])
    assert_close(out.logits, one, atol=1e-5, rtol=0)
    # the word tokenizer really tokenizes differently
    s = sst2_examples[b[0]].text_a
    assert wtok(s)["input_ids"] != tok(s)["input_ids"]


def test_callable_teacher_gets_pairs(mrpc_enc):
    got = []

    def fn(texts):
        got.extend(texts)
        return np.zeros((len(texts), 2), dtype=np.float64)

    out = T.CallableTeacher(fn, mrpc_enc)(collate(mrpc_enc, [4, 1, 11]))
    assert got == [mrpc_enc.texts[i] for i in (4, 1, 11)]
    assert all(isinstance(t, tuple) and len(t) == 2 and t[1] for t in got)
    assert out.logits.dtype == torch.float32 and out.logits.shape == (3, 2)
    # a word-level BERT over the pairs works too (token type ids from its own template)
    fn2, _, _ = word_teacher([a + " " + b for a, b in mrpc_enc.texts])
    assert T.CallableTeacher(fn2, mrpc_enc)(collate(mrpc_enc, [0, 1])).logits.shape == (2, 2)


@pytest.mark.parametrize("bad", [
    lambda texts: np.zeros(len(texts)),                 # [B]
    lambda texts: np.zeros((len(texts) + 1, 2)),        # wrong batch
    lambda texts: np.zeros((len(texts), 2, 1)),         # 3-d
])
def test_callable_teacher_wrong_shape(enc, bad):
    with pytest.raises(ModelError, match="shape"):
        T.CallableTeacher(bad, enc)(collate(enc, [0, 1, 2]))


# ------------------------------------------------------------------ logits files
def test_logits_file_npy_and_jsonl(enc, tmp_path):
    n_rows = max(enc.idx) + 1
    table = np.random.default_rng(0).normal(size=(n_rows, 2)).astype(np.float32)
    np.save(tmp_path / "t.npy", table)
    b = [7, 0, 33]
    want = torch.tensor(table[[enc.idx[i] for i in b]])
    t_npy = T.LogitsFileTeacher(tmp_path / "t.npy", enc)
    assert_close(t_npy(collate(enc, b)).logits, want, atol=0, rtol=0)

    rng = np.random.default_rng(1)
    keys = list(enc.idx) + [n_rows + 5]                 # an extra row is fine
    rng.shuffle(keys)
    lines = [json.dumps({"idx": int(i), "logits": table[i].tolist() if i < n_rows else [9, 9]})
             for i in keys]
    (tmp_path / "t.jsonl").write_text("\n".join(lines[:5]) + "\n\n" + "\n".join(lines[5:]) + "\n")
    t_jsonl = T.LogitsFileTeacher(tmp_path / "t.jsonl", enc)
    assert_close(t_jsonl(collate(enc, b)).logits, want, atol=0, rtol=0)


def test_logits_file_missing_rows(enc, tmp_path):
    lines = [json.dumps({"idx": i, "logits": [0.0, 1.0]}) for i in enc.idx[1:]]
    (tmp_path / "m.jsonl").write_text("\n".join(lines))
    with pytest.raises(ConfigError, match=rf"no row for 1 examples \(first: row {enc.idx[0]}\)"):
        T.LogitsFileTeacher(tmp_path / "m.jsonl", enc)
    np.save(tmp_path / "short.npy", np.zeros((max(enc.idx), 2), dtype=np.float32))
    with pytest.raises(ConfigError, match="no row for 1 examples"):
        T.LogitsFileTeacher(tmp_path / "short.npy", enc)
    with pytest.raises(ConfigError, match="does not exist"):
        T.LogitsFileTeacher(tmp_path / "nope.npy", enc)


# ------------------------------------------------------------------ KD objective
def test_kd_objective_student_equal_to_teacher(tiny_bert, enc):
    student = classifier(tiny_bert).eval()  # eval: no dropout, so student == teacher exactly
    teacher = T.OnlineTeacher(copy.deepcopy(student))
    batch = collate(enc, BATCHES[0])
    obj = KDObjective(student, teacher, alpha=1.0, temperature=2.0)
    out = obj(batch)
    assert set(out) == {"loss", "soft"}
    assert abs(out["soft"].item()) < 1e-6 and abs(out["loss"].item()) < 1e-6
    assert all(p.requires_grad for p in student.parameters())  # the teacher copy froze itself
    # the teacher is no parameter and is not checkpointed
    assert set(dict(obj.named_parameters())) == {f"student.{k}" for k, _ in
                                                 student.named_parameters()}
    obj2 = KDObjective(student, teacher, alpha=0.25, temperature=2.0)
    out2 = obj2(batch)
    assert set(out2) == {"loss", "hard", "soft"}
    assert out2["hard"].item() > 0.1
    assert_close(out2["loss"], 0.25 * out2["soft"] + 0.75 * out2["hard"])


def test_kd_objective_soft_loss_value_and_schedule(tiny_bert, enc):
    student = classifier(tiny_bert, seed=0).eval()
    t_model = classifier(tiny_bert, seed=1)  # another, larger head: a different teacher
    with torch.no_grad():
        t_model.classifier.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(1))
    teacher = T.OnlineTeacher(t_model)
    batch = collate(enc, BATCHES[1])
    obj = KDObjective(student, teacher, alpha=1.0, temperature="linear:4:1", total_steps=10)
    with torch.no_grad():
        s_logits = student(**{k: batch[k] for k in T.MODEL_INPUTS if k in batch}).logits
        t_logits = t_model(**{k: batch[k] for k in T.MODEL_INPUTS if k in batch}).logits
    at4 = obj(batch)["soft"]
    assert_close(at4, L.soft_kd_loss(s_logits, t_logits, temperature=4.0))
    obj.on_step_begin(5, 10)
    assert_close(obj(batch)["soft"], L.soft_kd_loss(s_logits, t_logits, temperature=2.5))
    obj.on_step_begin(10, 10)
    at1 = obj(batch)["soft"]
    assert_close(at1, L.soft_kd_loss(s_logits, t_logits, temperature=1.0))
    assert at4.item() > 0.05 and at1.item() > 0.05 and abs(at1.item() - at4.item()) > 0.01
    # a different run length rebuilds the schedule: step 5 of 20 is τ = 4 - 3/4
    obj.on_step_begin(5, 20)
    assert_close(obj(batch)["soft"], L.soft_kd_loss(s_logits, t_logits, temperature=3.25))
    with pytest.raises(ConfigError):
        KDObjective(student, teacher, temperature="wobbly:1:2")


def test_kd_objective_multi_teacher_mixture(tiny_bert, enc):
    student = classifier(tiny_bert, seed=0).eval()
    a, b = T.OnlineTeacher(classifier(tiny_bert, seed=1)), T.OnlineTeacher(classifier(tiny_bert, 2))
    mt = T.MultiTeacher([a, b], "confidence")
    batch = collate(enc, BATCHES[2])
    out = KDObjective(student, mt, alpha=1.0, temperature=3.0)(batch)
    x = {k: batch[k] for k in T.MODEL_INPUTS if k in batch}
    with torch.no_grad():  # by hand, from the three models' own logits
        s_logits = student(**x).logits
        la, lb = a.model(**x).logits, b.model(**x).logits
    ca, cb = la.softmax(-1).max(-1).values, lb.softmax(-1).max(-1).values
    wa, wb = ca / (ca + cb), cb / (ca + cb)
    target = wa[:, None] * (la / 3).softmax(-1) + wb[:, None] * (lb / 3).softmax(-1)
    logq = (s_logits / 3).log_softmax(-1)
    want = 9.0 * (target * (target.log() - logq)).sum(-1).mean()  # τ²·KL, mean over rows
    assert_close(out["soft"], want)


def test_kd_objective_hidden_projection_gets_gradients(tiny_bert, enc):
    teacher = classifier(tiny_bert)
    student = S.smaller(teacher, hidden=16, heads=2).eval()  # no dropout: comparable grads
    assert student.config.hidden_size == 16 and teacher.config.hidden_size == 32
    pairs = resolve_mapping("uniform", 2, 2)
    matches = build_matches(pairs, ["hidden", "attention"])
    projections = Projections(matches, 16, 32)
    assert sorted(projections.keys()) == ["s0_t0", "s1_t1", "s2_t2"]
    needs = needs_of(matches)
    assert needs == T.Needs(hidden=(0, 1, 2), attention=(1, 2))
    obj = KDObjective(student, T.OnlineTeacher(teacher, needs), matches, projections,
                      alpha=0.5, beta=1.0)
    assert {n.split(".")[0] for n, _ in obj.named_parameters()} == {"student", "projections"}
    out = obj(collate(enc, BATCHES[0]))
    assert set(out) == {"loss", "hard", "soft", "inter"}
    assert out["inter"].item() > 0
    out["loss"].backward()
    for key in projections.keys():
        g = projections.proj[key].weight.grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, key
    assert student.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    # the hidden-state terms reach the student itself, not only the projections
    emb = student.bert.embeddings.word_embeddings.weight
    g1 = emb.grad.clone()
    student.zero_grad()
    hidden_only = [mt for mt in matches if mt.feature == "hidden"]
    KDObjective(student, T.OnlineTeacher(teacher, needs), hidden_only, projections, alpha=0.5,
                beta=0.0)(collate(enc, BATCHES[0]))["loss"].backward()
    g0 = emb.grad.clone()
    student.zero_grad()
    KDObjective(student, T.OnlineTeacher(teacher, needs), hidden_only, projections, alpha=0.5,
                beta=1.0)(collate(enc, BATCHES[0]))["loss"].backward()
    assert (emb.grad - g0).abs().sum() > 1e-6 and not torch.equal(g1, g0)


def test_kd_objective_predict_keeps_no_value_outputs(tiny_bert, enc):
    """The student's value hooks also fire in ``predict`` (evaluation): their outputs must not
    pile up across evaluation batches."""
    teacher = classifier(tiny_bert)
    student = copy.deepcopy(teacher)
    matches = build_matches(resolve_mapping("uniform", 2, 2), ["value_relation"])
    obj = KDObjective(student, T.OnlineTeacher(teacher, needs_of(matches)), matches,
                      relation_heads=2)
    with torch.no_grad():
        for b in BATCHES:
            obj.predict(collate(enc, b))
    assert obj.recorder.outputs == []
    out = obj(collate(enc, BATCHES[0]))  # training still sees this batch's values
    assert len(obj.recorder.outputs) == 2 and out["inter"].item() < 1e-6


def test_subset_student_keeps_the_uniformly_mapped_layers():
    """Default subset layers = the layers the default ("uniform") mapping matches them to."""
    from transformers import BertConfig, BertForSequenceClassification

    from lmdistill import config as C
    from lmdistill.mapping import uniform
    from lmdistill.models.students import build_student

    torch.manual_seed(0)
    base = BertForSequenceClassification(BertConfig(
        vocab_size=50, hidden_size=8, num_hidden_layers=6, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16))
    for k, want in ((4, [1, 2, 4, 5]), (3, [1, 3, 5]), (1, [5])):
        student = build_student(C.StudentConfig(kind="subset", num_layers=k), base)
        assert want == [t - 1 for _, t in uniform(6, k, include_embeddings=False)]
        for i, j in enumerate(want):
            assert torch.equal(student.bert.encoder.layer[i].output.dense.weight,
                               base.bert.encoder.layer[j].output.dense.weight), (k, i, j)


def test_fit_temperature_recovers_a_known_temperature():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(20000, 5, generator=g) * 3
    for tau in (0.7, 2.5, 6.0):
        y = torch.multinomial((z / tau).softmax(-1), 1, generator=g)[:, 0]
        assert KC.fit_temperature(z, y) == pytest.approx(tau, rel=0.06)
    # calibrated logits have a lower ECE than the raw (over-confident) ones
    y = torch.multinomial((z / 2.5).softmax(-1), 1, generator=g)[:, 0]
    t = KC.fit_temperature(z, y)
    assert KC.expected_calibration_error(z / t, y) < KC.expected_calibration_error(z, y) / 3
    with pytest.raises(ConfigError, match="fit_temperature"):
        KC.fit_temperature(z, y[:10])


def test_auto_temperature_clamps_and_reports_the_unclamped_fit():
    from types import SimpleNamespace

    from lmdistill.methods.kd.calibration import TAU_RANGE, auto_temperature

    g = torch.Generator().manual_seed(1)
    z = torch.randn(20000, 5, generator=g)
    for true, want in ((2.5, 2.5), (0.3, TAU_RANGE[0])):
        y = torch.multinomial((z / true).softmax(-1), 1, generator=g)[:, 0]
        tau, fit = auto_temperature(get_task("sst2"), SimpleNamespace(labels=y.tolist()), z)
        assert fit["tau_fit"] == pytest.approx(true, rel=0.06)
        assert tau == pytest.approx(want, rel=0.06)
        assert fit["mean_top_prob_fit"] == pytest.approx(
            float((z / tau).softmax(-1).max(-1).values.mean()))
