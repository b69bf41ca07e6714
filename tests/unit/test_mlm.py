"""Masked-LM data and objectives (issue 10): masking statistics on real WikiText-2 blocks, the
held-out split, per-token weighting on hand-built distributions, and the MLM KD loss against a
hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from lmdistill import losses as L
from lmdistill import teachers as T
from lmdistill.data.collate import IGNORE_INDEX
from lmdistill.data.mlm import WholeWordMasker, heldout_mask, load_mlm, tokenize_blocks
from lmdistill.errors import DataError
from lmdistill.methods.mlm.objective import MLMKDObjective, MLMTeachers, masked_logits
from lmdistill.models import hub


@pytest.fixture(scope="module")
def tok():
    return hub.load_tokenizer("minilm-l6")


@pytest.fixture(scope="module")
def blocks(tok):
    return load_mlm("mlm:wikitext2", tok, block_size=64, heldout=0.1, max_blocks=600)


def test_blocks_and_word_indices(tok):
    lines = ["the cat sat on the mat .", "unbelievably , tokenization splits words ."]
    b, w = tokenize_blocks(lines * 10, tok, block_size=16)
    assert b and all(len(x) == 16 for x in b) and all(len(x) == 16 for x in w)
    assert all(x[0] == tok.cls_token_id and x[-1] == tok.sep_token_id for x in b)
    assert all(x[0] == -1 and x[-1] == -1 for x in w)
    # a word split into several word pieces keeps one index; indices never go down
    flat_ids = [t for x in b for t in x[1:-1]]
    flat_w = [t for x in w for t in x[1:-1]]
    pieces = tok.convert_ids_to_tokens(flat_ids)
    for i in range(1, len(pieces)):
        assert flat_w[i] >= flat_w[i - 1]
        assert (flat_w[i] == flat_w[i - 1]) == pieces[i].startswith("##"), (pieces[i - 1:i + 1])


def test_heldout_split_is_a_function_of_the_text(blocks, tok):
    train, held = blocks
    assert 0.05 < len(held) / (len(train) + len(held)) < 0.15
    b, _ = tokenize_blocks(["some words here and there"] * 50, tok, block_size=12)
    m = heldout_mask(b, 0.3)
    assert heldout_mask(list(reversed(b)), 0.3) == list(reversed(m))  # order-independent
    again = load_mlm("mlm:wikitext2", tok, block_size=64, heldout=0.1, max_blocks=600)[1]
    assert again.input_ids == held.input_ids


def test_masking_statistics(blocks, tok):
    """Rate ≈ 15% of words, 80/10/10 among their tokens, whole words, specials never."""
    train, _ = blocks
    m = WholeWordMasker(tok, 0.15, seed=0)
    words_total = words_chosen = 0
    kinds = {"mask": 0, "random": 0, "kept": 0}
    special = set(tok.all_special_ids)
    for i in range(300):
        ids, words = train.input_ids[i], train.words[i]
        inp, lab = m.mask_one(ids, words, step=3, example=train.idx[i])
        chosen_words = {w for w, y in zip(words, lab) if y != IGNORE_INDEX}
        word_set = {w for w in words if w >= 0}
        words_total += len(word_set)
        words_chosen += len(chosen_words)
        for t, w, x, y in zip(ids, words, inp, lab):
            if t in special:
                assert y == IGNORE_INDEX and x == t  # never masked, never replaced
                continue
            assert (y != IGNORE_INDEX) == (w in chosen_words)  # whole words
            if y == IGNORE_INDEX:
                assert x == t
            else:
                assert y == t
                kinds["mask" if x == tok.mask_token_id else "kept" if x == t else "random"] += 1
    rate = words_chosen / words_total
    assert abs(rate - 0.15) < 0.02, rate
    n = sum(kinds.values())
    assert n > 1000
    assert abs(kinds["mask"] / n - 0.8) < 0.03
    # "random" can hit the original token (1 in 30522): kept ≈ 10%, random ≈ 10%
    assert abs(kinds["random"] / n - 0.1) < 0.025 and abs(kinds["kept"] / n - 0.1) < 0.025


def test_masks_are_reproducible_and_dynamic(blocks, tok):
    train, _ = blocks
    m = WholeWordMasker(tok, 0.15, seed=0)
    a = m(train, [0, 1, 2], step=5)
    assert torch.equal(a["labels"], m(train, [0, 1, 2], step=5)["labels"])
    assert not torch.equal(a["labels"], m(train, [0, 1, 2], step=6)["labels"])
    fixed = m(train, [0, 1], step=None)
    assert torch.equal(fixed["labels"], m(train, [0, 1], step=None)["labels"])
    assert torch.equal(m(train, [1], None)["labels"][0], fixed["labels"][1])  # per example
    with pytest.raises(DataError):
        WholeWordMasker(tok, 0.0)


# ------------------------------------------------------------------ weighting and the loss
def test_per_token_gold_weighting_prefers_the_teacher_right_on_that_token():
    """Two teachers, three masked tokens: on each token the teacher that gives the gold token
    more probability gets more weight; rows of the mixture sum to 1."""
    V = 4
    gold = torch.tensor([0, 1, 3])
    a = torch.log(torch.tensor([[.7, .1, .1, .1], [.1, .2, .6, .1], [.25, .25, .25, .25]]))
    b = torch.log(torch.tensor([[.1, .1, .7, .1], [.1, .8, .05, .05], [.1, .1, .1, .7]]))
    w = T.teacher_weights(torch.stack([a, b]), "gold", gold)
    assert_close(w, torch.tensor([[.7 / .8, .1 / .8], [.2 / 1.0, .8 / 1.0],
                                  [.25 / .95, .7 / .95]]))
    conf = T.teacher_weights(torch.stack([a, b]), "confidence", gold)
    assert_close(conf[0], torch.tensor([.5, .5]))  # equal confidence, only gold tells them apart
    mixed = T.mix(torch.stack([a, b]), w)
    assert mixed.shape == (3, V)
    assert_close(mixed.sum(-1), torch.ones(3))


class Stub(torch.nn.Module):
    """A 'masked LM' whose logits at a position are a fixed row per input token id."""

    base_model_prefix = "enc"

    def __init__(self, table):
        super().__init__()
        self.enc = _Enc(torch.nn.Embedding.from_pretrained(table.clone(), freeze=False))
        self.cls = torch.nn.Identity()


class _Enc(torch.nn.Module):
    def __init__(self, emb):
        super().__init__()
        self.emb = emb

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return (self.emb(input_ids),)


def test_mlm_kd_loss_equals_a_hand_computation():
    V, tau, alpha = 5, 2.0, 0.3
    g = torch.Generator().manual_seed(0)
    s_tab, a_tab, b_tab = (torch.randn(V, V, generator=g) for _ in range(3))
    student, ta, tb = Stub(s_tab), Stub(a_tab), Stub(b_tab)
    # two blocks; the second is padded; masked positions hold ids 4 ([MASK]-like) and 2
    batch = {"input_ids": torch.tensor([[1, 4, 3, 2, 0], [1, 4, 0, 0, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]),
             "labels": torch.tensor([[-100, 3, -100, 1, -100], [-100, 2, -100, -100, -100]])}
    teachers = MLMTeachers([ta, tb], V, "gold")
    obj = MLMKDObjective(student, teachers, masker=None, alpha=alpha, temperature=tau)
    out = obj(batch)
    # by hand, per masked token (input id, gold): (4, 3), (2, 1), (4, 2)
    hard = soft = 0.0
    for x, y in ((4, 3), (2, 1), (4, 2)):
        ls = s_tab[x]
        hard += -ls.log_softmax(-1)[y]
        pa, pb = a_tab[x].softmax(-1)[y], b_tab[x].softmax(-1)[y]
        wa, wb = pa / (pa + pb), pb / (pa + pb)
        target = wa * (a_tab[x] / tau).softmax(-1) + wb * (b_tab[x] / tau).softmax(-1)
        q = (ls / tau).log_softmax(-1)
        soft += tau ** 2 * (target * (target.log() - q)).sum()
    hard, soft = hard / 3, soft / 3
    assert_close(out["hard"], hard.detach(), atol=1e-6, rtol=0)
    assert_close(out["soft"], soft.detach(), atol=1e-6, rtol=0)
    assert_close(out["loss"].detach(), ((1 - alpha) * hard + alpha * soft).detach(), atol=1e-6,
                 rtol=0)
    # padding and unmasked positions contribute nothing: other ids there, same loss
    batch2 = {**batch, "input_ids": batch["input_ids"].clone()}
    batch2["input_ids"][0, 2] = 0
    batch2["input_ids"][1, 3:] = 3
    assert_close(obj(batch2)["loss"], out["loss"])


def test_masked_logits_on_a_real_bert_only_at_masked_positions(tiny_bert):
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    m = BertForMaskedLM.from_pretrained(str(tiny_bert)).eval()
    ids = torch.tensor([[101, 2023, 103, 2003, 102, 0], [101, 103, 103, 102, 0, 0]])
    mask = (ids != 0).long()
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 1], labels[1, 2] = 2742, 2070, 2000
    logits, gold = masked_logits(m, {"input_ids": ids, "attention_mask": mask,
                                     "labels": labels})
    with torch.no_grad():
        full = m(input_ids=ids, attention_mask=mask).logits
    assert logits.shape == (3, m.config.vocab_size) and gold.tolist() == [2742, 2070, 2000]
    assert_close(logits.detach(), full[labels != -100], atol=1e-5, rtol=0)
    assert math.isfinite(float(L.hard_ce_loss(logits, gold).detach()))


def test_strategies_refuse_what_cannot_apply():
    with pytest.raises(Exception, match="needs 2 weights"):
        MLMTeachers([Stub(torch.eye(3)), Stub(torch.eye(3))], 3, "fixed")
    w = MLMTeachers([Stub(torch.eye(3)), Stub(torch.eye(3))], 3, "fixed", fixed=[1, 3])
    batch = {"input_ids": torch.tensor([[0, 1]]), "attention_mask": torch.ones(1, 2).long(),
             "labels": torch.tensor([[-100, 1]])}
    assert_close(w(batch).weights, torch.tensor([[0.25, 0.75]]))
    assert np.isclose(float(w(batch).logits.shape[1]), 1)


def test_domain_corpora_hold_their_tasks_training_text_only(data_dir):
    """Issue 31's teacher domains: ``reviews`` and ``questions`` are their tasks' training
    texts less any evaluation row of those tasks (SST-2's dev sentences are in RT's training
    rows: they must not reach a teacher whose student is then evaluated on SST-2);
    ``literature`` the literary texts."""
    from lmdistill.data.mlm import DOMAIN_TASKS, _norm, corpus_lines
    from lmdistill.data.tasks import get_task

    for corpus, names in DOMAIN_TASKS.items():
        lines = list(corpus_lines(corpus, data_dir))
        tasks = [get_task(n, data_dir=data_dir) for n in names]
        held = {_norm(t) for task in tasks for sp in task.splits if sp not in ("train", "all")
                for e in task.load(sp) for t in (e.text_a, e.text_b) if t}
        train = [t for task in tasks for e in task.load("train") for t in (e.text_a, e.text_b)
                 if t]
        assert len(lines) == sum(_norm(t) not in held for t in train) > 10000, corpus
        assert not held & {_norm(t) for t in lines}
    sst2_dev = {_norm(e.text_a) for e in get_task("sst2", data_dir=data_dir).load("dev")}
    assert not sst2_dev & {_norm(t) for t in corpus_lines("reviews", data_dir)}
    lit = list(corpus_lines("literature", data_dir))
    assert lit[0] == "First Citizen:" and len(lit) > 50000


def test_domains_are_blocked_and_split_as_alone_and_scored_per_domain(tok, tiny_bert,
                                                                     tmp_path):
    """``a|b``: each domain's train and held-out blocks are exactly those of the domain alone
    (so a teacher trained on one domain never saw a held-out block of it), block indices stay
    unique across domains (they seed the fixed masks), and the per-domain figures pool to the
    figures over all held-out blocks."""
    from transformers import BertForMaskedLM

    from lmdistill.methods.mlm.run import evaluate_by_domain
    from lmdistill.methods.mlm.objective import evaluate_mlm

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("".join(f"the cat number {i} sat on the mat and looked around .\n"
                         for i in range(300)))
    b.write_text("".join(f"what is the price of {i} apples in the shop today ?\n"
                         for i in range(300)))
    train, held = load_mlm(f"mlm:{a}|{b}", tok, block_size=16, heldout=0.2)
    for name, part in ((str(a), 0), (str(b), 1)):
        alone = load_mlm(str(name), tok, block_size=16, heldout=0.2)
        for joined, own in zip((train, held), alone):
            mine = [i for i, d in enumerate(joined.domains) if d == name]
            assert [joined.input_ids[i] for i in mine] == own.input_ids
            assert joined.by_domain()[name].input_ids == own.input_ids
    assert len(set(train.idx + held.idx)) == len(train) + len(held)
    assert set(held.domains) == {str(a), str(b)}
    with pytest.raises(DataError):
        load_mlm(f"mlm:{a}|{a}", tok, block_size=16)
    torch.manual_seed(0)
    m = BertForMaskedLM.from_pretrained(str(tiny_bert)).eval()
    masker = WholeWordMasker(tok, 0.15, 0)
    per = evaluate_by_domain(m, held, masker, 8)
    whole = evaluate_mlm(m, held, masker, 8)
    assert per["mlm_accuracy"] == pytest.approx(whole["mlm_accuracy"], abs=1e-9)
    assert per["mlm_loss"] == pytest.approx(whole["mlm_loss"], rel=1e-5)
    assert per["masked_tokens"] == whole["masked_tokens"]
    assert {f"mlm_accuracy_{a}", f"mlm_loss_{b}"} <= set(per)


def test_a_corpus_path_may_hold_a_plus_or_a_bar(tok, tmp_path):
    """A file whose path has '+' or '|' (run folders like ``full-books+dvd``) is one corpus,
    not several."""
    d = tmp_path / "books+dvd|x"
    d.mkdir()
    f = d / "text.txt"
    f.write_text("".join(f"line {i} of some words for the blocks here .\n" for i in range(400)))
    train, held = load_mlm(str(f), tok, block_size=16, heldout=0.2)
    assert len(train) > 0 and len(held) > 0 and train.domains is None
