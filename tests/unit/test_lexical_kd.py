"""Lexical KD (issue 28, part 2): the objective's terms against hand-computed values and the
reference losses, the wordpiece pooling of target words, a synthetic problem with a known
answer (a word's sense set by a context word, given by the teacher's vectors) that the student
must learn through the one loop, and a resumed run ending on the uninterrupted run's weights."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from lmdistill import config as C
from lmdistill import losses as L
from lmdistill.data.wsd import Sentence, Token
from lmdistill.methods.lexical.lexkd import (IGNORE, LexicalKD, encode_targets,
                                             evaluate_targets)
from lmdistill.train.loop import Trainer


@pytest.fixture
def cache(lexical_cache, monkeypatch):
    monkeypatch.setenv("LMDISTILL_CACHE", str(lexical_cache))
    return lexical_cache


@pytest.fixture(scope="module")
def wn(lexical_cache, data_dir):
    from lmdistill.data.wordnet import load_wordnet

    return load_wordnet(data_dir)


# ------------------------------------------------------------------ the terms by hand
def _obj(**kw):
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    return LexicalKD(None, table=table, **kw)


def _batch():
    return {"t_vec": torch.tensor([[1.0, 1.0], [0.0, 3.0]]),
            "t_cand": torch.tensor([[0, 1, -1], [0, 1, 2]]),
            "t_gold": torch.tensor([0, IGNORE])}


def test_terms_by_hand():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    obj = _obj(kd_weight=2.0, sense_weight=3.0, temperature=0.5)
    t = obj.terms(_batch(), s)
    # kd: 1 − cos(s_n, t_n): 1 − 1/√2 for the first target, 1 − 1 for the second
    assert float(t["kd"]) == pytest.approx((1 - 1 / math.sqrt(2) + 0.0) / 2)
    # sense, the first target only (the second has no gold index): logits cos/τ = [2, 0]
    # (the padded third candidate is masked): −log(e²/(e² + 1)) = log(1 + e⁻²)
    assert float(t["sense"]) == pytest.approx(math.log(1 + math.exp(-2)))
    assert int(t["sense_rows"]) == 1
    # the reference losses give the same
    assert_close(t["kd"], L.cosine_embedding_loss(s, _batch()["t_vec"]))
    assert_close(t["sense"], L.hard_ce_loss(torch.tensor([[2.0, 0.0, -1e4]]),
                                            torch.tensor([0])))
    # mse: ((1−1)² + (0−1)² + (0−0)² + (1−3)²) / 4
    assert float(_obj(kd_loss="mse").terms(_batch(), s)["kd"]) == pytest.approx(5 / 4)
    # the teacher's own softmax over the same candidates: cos([1,1], ·)/τ = [√2, √2] →
    # p_T = [½, ½]; p_S = softmax([2, 0]); KL(p_T ‖ p_S) = ½ log(½/p_S0) + ½ log(½/p_S1)
    ps = [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)]
    kl = 0.5 * math.log(0.5 / ps[0]) + 0.5 * math.log(0.5 / ps[1])
    obj = _obj(sense_weight=1.0, temperature=0.5, sense_target="teacher")
    assert float(obj.terms(_batch(), s)["sense"]) == pytest.approx(kl, rel=1e-5)


def test_weights_combine_and_zero_terms_are_not_computed():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    obj = _obj(kd_weight=2.0, sense_weight=3.0, temperature=0.5)
    t = obj.terms(_batch(), s)
    obj.vectors = lambda batch: s  # the student is not the point here
    out = obj(_batch())
    assert float(out["loss"]) == pytest.approx(2 * float(t["kd"]) + 3 * float(t["sense"]))
    only_sense = _obj(kd_weight=0.0, sense_weight=1.0)
    assert set(only_sense.terms({k: v for k, v in _batch().items() if k != "t_vec"}, s)) == {
        "sense", "sense_rows"}  # no teacher vector needed without KD
    # schedules: the weight at the current step
    sched = _obj(kd_weight="linear:0:1", total_steps=10)
    sched.on_step_begin(0, 10)
    assert "kd" not in sched.terms(_batch(), s)
    sched.on_step_begin(5, 10)
    assert sched.kd_weight(sched.step) == pytest.approx(0.5)


# ------------------------------------------------------------------ targets and pooling
def _sent(sid, words, targets, lemma_pos):
    toks = [Token(w, w.lower(), "X") for w in words]
    for k, (i, (lemma, pos)) in enumerate(zip(targets, lemma_pos)):
        toks[i] = Token(words[i], lemma, pos, f"{sid}.t{k:03d}")
    return Sentence(sid, toks)


def test_targets_pool_their_own_wordpieces(cache, wn, tiny_bert):
    from transformers import AutoModel

    from lmdistill.models import hub

    tok = hub.load_tokenizer(str(tiny_bert))
    s = _sent("d0.s0", ["unbelievably", "the", "river_bank", "bank", "money"], [2, 3],
              [("river_bank", "NOUN"), ("bank", "NOUN")])
    shore, fin = "bank%1:17:01::", "bank%1:14:00::"
    gold = {"d0.s0.t000": ["riverbank%1:17:00::"], "d0.s0.t001": [fin]}
    row = {shore: 0, fin: 1}
    enc = encode_targets([s], gold, tok, 64, row, wn)
    pieces = tok(["unbelievably", "the", "river bank", "bank", "money"],
                 is_split_into_words=True)
    want = [[p for p, w in enumerate(pieces.word_ids()) if w == i] for i in (2, 3)]
    assert enc.pieces == [want] and len(want[0]) >= 2  # "river bank": two words, one target
    # river_bank has no candidate with a table row; bank's are [shore, fin], gold fin
    assert enc.cands == [[], [0, 1]] and enc.gold == [IGNORE, 1]
    obj = LexicalKD(AutoModel.from_pretrained(str(tiny_bert)), table=torch.eye(2, 32))
    b = obj.collate(enc, [0])
    h = obj.student(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                    output_hidden_states=True).hidden_states[-1][0]
    v = obj.vectors(b)
    for n, ps in enumerate(want):
        assert_close(v[n], h[ps].mean(0))
    assert b["t_pool"].sum(-1).tolist() == pytest.approx([1.0, 1.0])
    # a target cut off by max_length is dropped; a sentence left without one too
    short = encode_targets([s], gold, tok, want[1][0], row, wn)
    assert short.ids == ["d0.s0.t000"]
    assert len(encode_targets([s], gold, tok, want[0][0], row, wn)) == 0


# ------------------------------------------------------------------ a known answer
SHORE, FIN = "bank%1:17:01::", "bank%1:14:00::"


def _bank(n: int, offset: int = 0):
    """Sentences 'the bank near the river / water' (shore) and 'the bank gave money / a loan'
    (financial), alternating; the gold keys."""
    sents, gold = [], {}
    for k in range(offset, offset + n):
        fin = k % 2 == 0
        ctx = ["money", "loan"][k // 2 % 2] if fin else ["river", "water"][k // 2 % 2]
        s = _sent(f"d{k}.s0", ["the", "bank", "near", "the", ctx], [1], [("bank", "NOUN")])
        sents.append(s)
        gold[s.tokens[1].id] = [FIN if fin else SHORE]
    return sents, gold


def _data(wn, tiny_bert, n=64, offset=0, dim=32):
    """The bank sentences with the teacher's target vector: one fixed random unit vector per
    sense (the teacher knows the sense; the tiny random student does not)."""
    from lmdistill.models import hub

    sents, gold = _bank(n, offset)
    enc = encode_targets(sents, gold, hub.load_tokenizer(str(tiny_bert)), 32,
                         {SHORE: 0, FIN: 1}, wn)
    senses = torch.nn.functional.normalize(torch.randn(2, dim, generator=torch.Generator()
                                                       .manual_seed(3)), dim=-1)
    enc.tvec = senses[[0 if gold[i] == [SHORE] else 1 for i in enc.ids]].numpy()
    return enc, senses


def _cfg(**over):
    base = dict(epochs=1, max_steps=80, batch_size=16, lr=3e-3, warmup_ratio=0.0,
                progress=False, log_every=1000, mixed_precision="no", seed=0)
    base.update(over)
    return C.TrainConfig(**base)


def _nn_accuracy(obj, enc, senses):
    with torch.no_grad():
        v = obj.vectors(obj.collate(enc, list(range(len(enc)))))
    want = torch.tensor([0 if g == 0 else 1 for g in enc.gold])
    pred = (torch.nn.functional.normalize(v, dim=-1) @ senses.T).argmax(-1)
    return float((pred == want).float().mean())


def test_the_student_learns_the_teachers_sense_vectors(cache, wn, tiny_bert, tmp_path):
    from transformers import AutoModel

    train, senses = _data(wn, tiny_bert)
    held, _ = _data(wn, tiny_bert, n=16, offset=100)  # other sentences, same contexts
    obj = LexicalKD(AutoModel.from_pretrained(str(tiny_bert)), table=senses)
    before = evaluate_targets(obj, held)
    assert before["cosine"] < 0.5
    Trainer(obj, train, _cfg(), tmp_path).fit()
    after = evaluate_targets(obj, held)
    assert after["cosine"] > 0.9 and after["sense_accuracy"] == 1.0
    assert _nn_accuracy(obj, held, senses) == 1.0  # NN over the teacher's sense vectors


def test_the_direct_student_learns_the_senses_without_a_teacher(cache, wn, tiny_bert,
                                                                tmp_path):
    from transformers import AutoModel

    train, _ = _data(wn, tiny_bert)
    train.tvec = None  # no teacher vector anywhere
    held, _ = _data(wn, tiny_bert, n=16, offset=100)
    held.tvec = None
    table = torch.randn(2, 32, generator=torch.Generator().manual_seed(1))
    obj = LexicalKD(AutoModel.from_pretrained(str(tiny_bert)), table=table, learned=True,
                    kd_weight=0.0, sense_weight=1.0)
    assert isinstance(obj.table, torch.nn.Parameter)
    t0 = obj.table.detach().clone()
    Trainer(obj, train, _cfg(), tmp_path).fit()
    assert not torch.equal(obj.table.detach(), t0)  # the table trains with the student
    assert evaluate_targets(obj, held)["sense_accuracy"] == 1.0


def test_a_resumed_run_ends_on_the_same_weights(cache, wn, tiny_bert, tmp_path):
    """Student and learned table come back from the checkpoint (two optimizers): resumed at
    step 4 of 10, the run ends where the uninterrupted one did."""
    from transformers import AutoModel

    train, senses = _data(wn, tiny_bert, n=48)

    def run(out, table_seed=1, resume=False):
        table = torch.randn(2, 32, generator=torch.Generator().manual_seed(table_seed))
        student = AutoModel.from_pretrained(str(tiny_bert))
        if table_seed != 1:  # other initial weights: all must come from the checkpoint
            torch.nn.init.normal_(student.embeddings.word_embeddings.weight)
        obj = LexicalKD(student, table=table, learned=True, sense_weight=1.0)
        torch.manual_seed(0)  # dropout: both full runs draw the same masks
        Trainer(obj, train, _cfg(max_steps=10, save_every=2, keep_checkpoints=10),
                out, resume=resume).fit()
        return obj

    ref = run(tmp_path / "a")
    run(tmp_path / "b")
    for c in sorted((tmp_path / "b" / "checkpoints").iterdir())[2:]:  # keep steps 2 and 4
        shutil.rmtree(c)
    resumed = run(tmp_path / "b", table_seed=7, resume=True)
    for k, v in ref.state_dict().items():
        assert_close(resumed.state_dict()[k], v, atol=0, rtol=0)
    assert "table" in ref.state_dict()
    # the teacher's table is a buffer rebuilt from its folder: not in the checkpoint
    assert "table" not in LexicalKD(None, table=senses).state_dict()
    assert np.isfinite(ref.table.detach().numpy()).all()
