"""Masked-language-model data: raw-text corpora, fixed-length token blocks, a held-out split
that is the same for every run, and dynamic whole-word masking (15%, the 80/10/10 rule).

Corpora (``mlm:<name>`` as a task; several joined with ``+``, e.g. ``mlm:wikitext2+shakespeare``,
streamed as one text; or with ``|``, e.g. ``mlm:reviews|questions|literature``, as *domains*:
each cut into blocks and split on its own, exactly as alone, so a domain's held-out blocks
are the same as its own corpus's, and every block remembers its domain for per-domain
figures):

==================  ===========================================================================
``wikitext2``       ``text/wikitext-2/{valid,test}.txt`` (WikiText-2, tokenized, CC BY-SA)
``shakespeare``     ``text/tinyshakespeare/input.txt``
``nltk-<name>``     a corpus zip under ``text/nltk/`` (``inaugural``, ``state_union``,
                    ``genesis``, ``shakespeare``): every text member, one line a line
``sst2-text``       the SST-2 training sentences (more real English, from the task files)
``reviews``         the review domain: the training texts of the four Amazon domains, SST-2
                    and RT, less any text that is also an evaluation row of one of them (SST-2
                    was built from RT's sentences: RT's training rows hold SST-2 dev ones)
``questions``       the question domain: the CIKM query pairs' sentences and CLINC150's
                    training intents, less their evaluation rows
``literature``      Tiny Shakespeare and the NLTK Genesis, Inaugural and State-of-the-Union
                    texts (= ``shakespeare+nltk-genesis+nltk-inaugural+nltk-state_union``)
a path              a ``.txt`` file or a folder of them: one document or sentence a line
==================  ===========================================================================

Lines are streamed, tokenized in chunks (one fast-tokenizer call per chunk, no padding),
concatenated and cut into blocks of ``block_size`` tokens ([CLS] ... [SEP]). Each block keeps
the word index of every token, so masking can take whole words. A block goes to the held-out
split when the hash of its token ids says so: the split depends on the text alone, not on the
order, the machine or the run.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .collate import IGNORE_INDEX, Encoded

CORPORA = ("wikitext2", "shakespeare", "nltk-inaugural", "nltk-state_union", "nltk-genesis",
           "nltk-shakespeare", "sst2-text", "reviews", "questions", "literature")
#: the domains of issue 31's masked-LM teachers: corpus -> the tasks whose train texts make it
DOMAIN_TASKS = {"reviews": ("amazon-books", "amazon-dvd", "amazon-electronics",
                            "amazon-kitchen", "sst2", "rt"),
                "questions": ("cikm", "clinc150")}
ALIASES = {"literature": "shakespeare+nltk-genesis+nltk-inaugural+nltk-state_union"}


def is_mlm_task(name: str | None) -> bool:
    return bool(name) and str(name).startswith("mlm:")


def _nltk_lines(path: Path) -> Iterator[str]:
    with zipfile.ZipFile(path) as z:
        for member in sorted(z.namelist()):
            if member.endswith("/") or member.endswith((".xml", ".dtd")) or "README" in member:
                continue
            yield from z.read(member).decode("utf-8", errors="replace").splitlines()


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def corpus_lines(spec: str, data_dir: str | Path | None = None) -> Iterator[str]:
    """The non-blank lines of a corpus (see the module doc), streamed."""
    from .registry import data_dir as resolve

    whole = Path(spec).expanduser().exists()  # a path may itself hold a '+'
    for part in [spec] if whole else "+".join(ALIASES.get(x, x)
                                             for x in spec.split("+")).split("+"):
        p = Path(part).expanduser()
        if p.exists():
            files = sorted(p.rglob("*.txt")) if p.is_dir() else [p]
            if not files:
                raise DataError(f"corpus folder {p} has no .txt files")
            for f in files:
                with open(f, encoding="utf-8", errors="replace") as fh:
                    yield from (ln.strip() for ln in fh if ln.strip())
            continue
        root = resolve(data_dir) / "text"
        if part == "wikitext2":
            for name in ("valid.txt", "test.txt"):
                with open(root / "wikitext-2" / name, encoding="utf-8") as fh:
                    for ln in fh:
                        ln = ln.strip()
                        if ln and not ln.startswith("= "):  # section headings
                            yield ln
        elif part == "shakespeare":
            with open(root / "tinyshakespeare" / "input.txt", encoding="utf-8") as fh:
                yield from (ln.strip() for ln in fh if ln.strip())
        elif part.startswith("nltk-"):
            f = root / "nltk" / f"{part[5:]}.zip"
            if not f.exists():
                raise DataError(f"unknown NLTK corpus '{part[5:]}' (no {f})")
            yield from (ln.strip() for ln in _nltk_lines(f) if ln.strip())
        elif part == "sst2-text":
            from .registry import get_task

            for e in get_task("sst2", data_dir=data_dir).load("train"):
                yield e.text_a
        elif part in DOMAIN_TASKS:
            from .registry import get_task

            tasks = [get_task(name, data_dir=data_dir) for name in DOMAIN_TASKS[part]]
            held = {_norm(t) for task in tasks for split in task.splits
                    if split not in ("train", "all")  # "all": train + dev (the Amazon domains)
                    for e in task.load(split) for t in (e.text_a, e.text_b) if t}
            for task in tasks:
                for e in task.load("train"):
                    for t in (e.text_a, e.text_b):
                        if t and _norm(t) not in held:
                            yield t
        else:
            raise DataError(f"unknown corpus '{part}'; known: {', '.join(CORPORA)}, or a .txt "
                            "file / folder")


def tokenize_blocks(lines, tokenizer, block_size: int = 128, chunk: int = 1000,
                    max_blocks: int | None = None) -> tuple[list[list[int]], list[list[int]]]:
    """Token blocks of exactly ``block_size`` ids ([CLS] + body + [SEP]) and each token's word
    index (-1 for the specials; words are numbered across the whole stream). The tail shorter
    than a block is dropped."""
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise DataError("MLM blocks need a tokenizer with [CLS]/[SEP]-like special tokens")
    body = block_size - 2
    if body < 8:
        raise DataError(f"block_size {block_size} is too small (>= 10)")
    ids_buf: list[int] = []
    word_buf: list[int] = []
    next_word = 0
    blocks, words = [], []

    def flush():
        while len(ids_buf) >= body:
            blocks.append([tokenizer.cls_token_id] + ids_buf[:body] + [tokenizer.sep_token_id])
            words.append([-1] + word_buf[:body] + [-1])
            del ids_buf[:body]
            del word_buf[:body]

    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) < chunk:
            continue
        next_word = _add(batch, tokenizer, ids_buf, word_buf, next_word)
        batch = []
        flush()
        if max_blocks and len(blocks) >= max_blocks:
            return blocks[:max_blocks], words[:max_blocks]
    if batch:
        _add(batch, tokenizer, ids_buf, word_buf, next_word)
        flush()
    if max_blocks:
        blocks, words = blocks[:max_blocks], words[:max_blocks]
    return blocks, words


def _add(batch, tokenizer, ids_buf, word_buf, next_word) -> int:
    enc = tokenizer(batch, add_special_tokens=False, truncation=False)
    for i, ids in enumerate(enc["input_ids"]):
        wids = enc.word_ids(i)
        for t, w in zip(ids, wids):
            ids_buf.append(t)
            word_buf.append(next_word + (w if w is not None else 0))
        next_word += (max((w for w in wids if w is not None), default=-1) + 1)
    return next_word


def heldout_mask(blocks: list[list[int]], fraction: float) -> list[bool]:
    """Which blocks are held out: a hash of the block's ids below ``fraction`` of its range."""
    out = []
    for b in blocks:
        h = int.from_bytes(hashlib.sha1(np.asarray(b, dtype=np.int32).tobytes()).digest()[:8],
                           "big")
        out.append(h / 2**64 < fraction)
    return out


class MLMEncoded(Encoded):
    """An :class:`Encoded` of token blocks that also knows each token's word index (and, for a
    ``|`` corpus, each block's domain)."""

    words: list[list[int]]
    domains: list[str] | None = None

    def subset(self, indices):
        sub = super().subset(indices)
        out = MLMEncoded(**sub.__dict__)
        out.words = [self.words[i] for i in indices]
        out.domains = [self.domains[i] for i in indices] if self.domains else None
        return out

    def by_domain(self) -> dict[str, "MLMEncoded"]:
        """The blocks of each domain, in first-seen order ({} for a one-domain corpus)."""
        if not self.domains:
            return {}
        names = list(dict.fromkeys(self.domains))
        return {d: self.subset([i for i, x in enumerate(self.domains) if x == d])
                for d in names}


def _join(parts: list[MLMEncoded], names: list[str]) -> MLMEncoded:
    """Domains' blocks in one MLMEncoded: ids shifted so that every block's index (which seeds
    its fixed mask) stays unique, each block tagged with its domain."""
    out = MLMEncoded([], None, [], [], [], parts[0].pad_id)
    out.words, out.domains = [], []
    offset = 0
    for e, name in zip(parts, names):
        out.input_ids += e.input_ids
        out.labels += e.labels
        out.idx += [offset + i for i in e.idx]
        out.texts += e.texts
        out.words += e.words
        out.domains += [name] * len(e)
        offset += e.n_blocks
    return out


def load_mlm(spec: str, tokenizer, block_size: int = 128, heldout: float = 0.05,
             data_dir=None, max_blocks: int | None = None) -> tuple[MLMEncoded, MLMEncoded]:
    """``(train, heldout)`` token blocks of corpus ``spec`` (``mlm:`` prefix optional); with
    ``|`` each domain separately (``max_blocks`` a domain), then joined."""
    spec = spec[4:] if spec.startswith("mlm:") else spec
    if "|" in spec and not Path(spec).expanduser().exists():
        names = spec.split("|")
        if len(set(names)) < len(names) or not all(names):
            raise DataError(f"corpus '{spec}': each domain once, none empty")
        loaded = [load_mlm(n, tokenizer, block_size, heldout, data_dir, max_blocks)
                  for n in names]
        return _join([t for t, _ in loaded], names), _join([h for _, h in loaded], names)
    blocks, words = tokenize_blocks(corpus_lines(spec, data_dir), tokenizer, block_size,
                                    max_blocks=max_blocks)
    if not blocks:
        raise DataError(f"corpus '{spec}' gives no block of {block_size} tokens")
    held = heldout_mask(blocks, heldout)
    parts = []
    for want in (False, True):
        idx = [i for i, h in enumerate(held) if h == want]
        e = MLMEncoded([blocks[i] for i in idx], None, [None] * len(idx), idx,
                       [(f"{spec}#{i}", None) for i in idx],
                       tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        e.words = [words[i] for i in idx]
        e.n_blocks = len(blocks)  # train + held-out: the index range of this corpus
        parts.append(e)
    if len(parts[1]) == 0 or len(parts[0]) == 0:
        raise DataError(f"corpus '{spec}': {len(blocks)} blocks are too few for a held-out "
                        f"split of {heldout:.0%}")
    return parts[0], parts[1]


class WholeWordMasker:
    """Dynamic whole-word masking: each word is chosen with probability ``probability``; every
    token of a chosen word becomes a prediction target and is replaced by [MASK] (80%), a
    random token (10%) or kept (10%), decided per token. Special tokens (word index -1) and
    padding are never chosen. The masks are a pure function of ``(seed, step, example)``: the
    same batch at the same step is masked the same way after a resume, another step masks
    other words (dynamic masking); ``step=None`` gives a fixed masking (held-out evaluation).
    """

    def __init__(self, tokenizer, probability: float = 0.15, seed: int = 0):
        if not 0.0 < probability < 1.0:
            raise DataError(f"mlm probability must be in (0, 1), got {probability}")
        if tokenizer.mask_token_id is None:
            raise DataError("masking needs a tokenizer with a [MASK] token")
        self.p, self.seed = probability, seed
        self.mask_id = tokenizer.mask_token_id
        self.vocab = len(tokenizer)
        self.special = set(tokenizer.all_special_ids)

    def _rng(self, step, example: int) -> np.random.Generator:
        s = -1 if step is None else int(step)
        return np.random.default_rng([self.seed, s + 1, example])

    def mask_one(self, ids: list[int], words: list[int], step, example: int):
        rng = self._rng(step, example)
        uniq = sorted({w for w, t in zip(words, ids) if w >= 0 and t not in self.special})
        chosen = {w for w, u in zip(uniq, rng.random(len(uniq))) if u < self.p}
        if not chosen and uniq:  # every block predicts at least one word
            chosen = {uniq[int(rng.integers(len(uniq)))]}
        inp, lab = list(ids), [IGNORE_INDEX] * len(ids)
        for i, (t, w) in enumerate(zip(ids, words)):
            if w in chosen and t not in self.special:
                lab[i] = t
                r = rng.random()
                if r < 0.8:
                    inp[i] = self.mask_id
                elif r < 0.9:
                    inp[i] = int(rng.integers(self.vocab))
        return inp, lab

    def __call__(self, enc: MLMEncoded, indices: list[int], step=None) -> dict:
        n = max(len(enc.input_ids[i]) for i in indices)
        ids = torch.full((len(indices), n), enc.pad_id, dtype=torch.long)
        labels = torch.full((len(indices), n), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(indices), n), dtype=torch.long)
        for r, i in enumerate(indices):
            inp, lab = self.mask_one(enc.input_ids[i], enc.words[i], step, enc.idx[i])
            ids[r, :len(inp)] = torch.tensor(inp)
            labels[r, :len(lab)] = torch.tensor(lab)
            mask[r, :len(inp)] = 1
        out = {"input_ids": ids, "attention_mask": mask, "labels": labels,
               "index": torch.tensor(indices)}
        if enc.token_type_ids is not None:  # e.g. label-conditional CBERT: the label's "segment"
            types = torch.zeros((len(indices), n), dtype=torch.long)
            for r, i in enumerate(indices):
                types[r, :len(enc.token_type_ids[i])] = torch.tensor(enc.token_type_ids[i])
            out["token_type_ids"] = types
        return out
