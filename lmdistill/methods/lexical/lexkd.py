"""Lexical KD into a small encoder: its vector of every tagged corpus token learns the NN sense
teacher's (token-level hidden-state KD), and/or a softmax over the token's candidate senses.

Data (:func:`encode_targets`): each corpus sentence with tagged tokens is one row, cut into
wordpieces as the NN teacher cuts it (:func:`.encoder.tokenize_words`, at most ``max_length``
pieces; a target cut off is dropped). Each kept target carries its wordpiece positions, its
candidate senses (WordNet's, most frequent first) that have a row in the sense table, the index
of its gold sense among them (-100 when the gold sense is not among them or fewer than 2 are:
nothing to choose) and, for KD, the teacher's target vector ``t`` (:func:`teacher_targets`:
the mean of the teacher's hidden states ``teacher_layers`` over the target's wordpieces, one
teacher pass, cached).

Objective (:class:`LexicalKD`), for the N targets of a batch, ``s_n`` the mean of the student's
hidden state ``student_layer`` over target n's wordpieces::

    loss    = kd_weight · L_kd + sense_weight · L_sense        (weights: numbers or schedules)
    L_kd    = mean_n (1 − cos(s_n, t_n))          losses.cosine_embedding_loss, [N, d] items
            | mean_n,d (s_n − t_n)²               losses.hidden_mse_loss   (kd_loss=mse)
    z_nj    = cos(s_n, v_j) / temperature         j: n's candidates, v_j their table rows
    L_sense = mean_n −log softmax(z_n)[gold_n]     losses.hard_ce_loss    (sense_target=gold)
            | mean_n KL(softmax(z'_n) ‖ softmax(z_n)),  z'_nj = cos(t_n, v_j) / temperature
                                                  losses.soft_kd_loss at τ = 1 (teacher)

``temperature`` scales cosines into logits on both sides (a contrastive temperature, not a
softening of free logits), so the KL carries no τ² factor. Only targets with a gold index count
in ``L_sense``. The sense table is the teacher's SemCor sense means in its target space (a fixed
buffer) or a table trained with the student (``learned``: initialised with the unit-normalised
means of the student's own initial vectors, its own optimizer and ``table_lr``, no decay).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ... import losses as L
from ...data.collate import Encoded, collate, sorted_batches
from ...data.wordnet import senses
from ...data.wsd import Sentence
from ...names import MODEL_INPUTS
from ...schedules import make_checked_schedules
from .encoder import tokenize_words

IGNORE = -100
MASKED = -1e4  # the logit of a padded candidate: softmax weight exactly 0, log finite


class LexEncoded(Encoded):
    """An :class:`Encoded` of corpus sentences whose targets carry their pieces, candidates,
    gold index and teacher vector (flat per-target lists, rows index them by ``tids``)."""

    pieces: list[list[list[int]]]   # row -> target -> wordpiece positions
    tids: list[list[int]]           # row -> target -> index into the per-target lists
    ids: list[str]                  # target -> instance id
    words: list[list[str]]          # row -> the sentence's words (for a teacher pass)
    targets: list[list[int]]        # row -> target -> word position
    cands: list[list[int]]          # target -> sense-table rows of its candidates
    gold: list[int]                 # target -> gold index among them, or IGNORE
    tvec: np.ndarray | None = None  # [targets, d] teacher vectors (KD)

    def subset(self, indices):
        sub = super().subset(indices)
        out = LexEncoded(**sub.__dict__)
        tids = [self.tids[i] for i in indices]
        flat = [t for ts in tids for t in ts]
        new = {t: k for k, t in enumerate(flat)}
        out.pieces = [self.pieces[i] for i in indices]
        out.tids = [[new[t] for t in ts] for ts in tids]
        out.words = [self.words[i] for i in indices]
        out.targets = [self.targets[i] for i in indices]
        out.ids = [self.ids[t] for t in flat]
        out.cands = [self.cands[t] for t in flat]
        out.gold = [self.gold[t] for t in flat]
        out.tvec = None if self.tvec is None else self.tvec[flat]
        return out

    @property
    def n_targets(self) -> int:
        return len(self.ids)


def candidate_rows(wn, lemma: str, pos: str, gold: list[str], row: dict[str, int],
                   memo: dict | None = None) -> tuple[list[int], int]:
    """The table rows of a target's candidate senses (WordNet order; those without a row are
    left out) and the gold index among them (the first gold key; IGNORE when none is there
    or fewer than 2 candidates are)."""
    memo = {} if memo is None else memo
    keys = memo.get((lemma, pos))
    if keys is None:
        keys = memo[(lemma, pos)] = [k for k, _ in senses(wn, lemma, pos)]
    kept = [k for k in keys if k in row]
    g = next((i for i, k in enumerate(kept) if k in set(gold)), IGNORE)
    return [row[k] for k in kept], (g if len(kept) > 1 else IGNORE)


def encode_targets(sents: list[Sentence], gold: dict[str, list[str]], tokenizer,
                   max_length: int, row: dict[str, int], wn) -> LexEncoded:
    """The rows of ``sents`` (those with at least one kept target; see the module docstring);
    ``row``: sense key -> sense-table row."""
    sents = [s for s in sents if s.instances]
    words = [[t.text for t in s.tokens] for s in sents]
    enc = tokenize_words(tokenizer, words, max_length)
    keep_rows, pieces, tids, targets = [], [], [], []
    ids, cands, golds, memo = [], [], [], {}
    for r, s in enumerate(sents):
        pos_of: dict[int, list[int]] = {}
        for p, w in enumerate(enc.word_ids(r)):
            if w is not None:
                pos_of.setdefault(w, []).append(p)
        ps, ts, ws = [], [], []
        for i, t in s.instances:
            if i not in pos_of:
                continue  # cut off by max_length
            c, g = candidate_rows(wn, t.lemma, t.pos, gold.get(t.id, []), row, memo)
            ps.append(pos_of[i])
            ts.append(len(ids))
            ws.append(i)
            ids.append(t.id)
            cands.append(c)
            golds.append(g)
        if ps:
            keep_rows.append(r)
            pieces.append(ps)
            tids.append(ts)
            targets.append(ws)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = LexEncoded([enc["input_ids"][r] for r in keep_rows],
                     [enc["token_type_ids"][r] for r in keep_rows]
                     if "token_type_ids" in enc else None,
                     [None] * len(keep_rows), list(range(len(keep_rows))),
                     [(sents[r].id, None) for r in keep_rows], pad)
    out.pieces, out.tids, out.targets = pieces, tids, targets
    out.words = [words[r] for r in keep_rows]
    out.ids, out.cands, out.gold, out.tvec = ids, cands, golds, None
    return out


def teacher_targets(enc: LexEncoded, encode, layers: list[int], chunk: int = 2000,
                    progress: bool = False) -> np.ndarray:
    """[targets, d] float32: per kept target of ``enc``, the mean of the hidden states
    ``layers`` of ``encode`` (a :class:`.encoder.TokenEncoder`) over its wordpieces."""
    out = np.zeros((enc.n_targets, encode.dim), np.float32)
    for c in range(0, len(enc), chunk):
        rows = range(c, min(c + chunk, len(enc)))
        vecs = encode([(enc.words[r], [[w] for w in enc.targets[r]]) for r in rows],
                      progress=progress, desc=f"teacher targets {c // chunk + 1}/"
                      f"{(len(enc) + chunk - 1) // chunk}")
        for r, v in zip(rows, vecs):
            out[enc.tids[r]] = v[:, list(layers)].mean(1)
    return out


class LexicalKD(torch.nn.Module):
    """The objective (see the module docstring). ``table``: [S, d] sense vectors (None: no
    sense term); ``learned``: the table is a parameter."""

    def __init__(self, student, tokenizer=None, table: torch.Tensor | None = None,
                 learned: bool = False, kd_weight=1.0, sense_weight=0.0, temperature=0.1,
                 kd_loss: str = "cosine", sense_target: str = "gold", student_layer: int = -1,
                 table_lr: float = 1e-3, total_steps: int | None = None):
        super().__init__()
        self.student, self.tokenizer = student, tokenizer
        self.kd_loss, self.sense_target, self.layer = kd_loss, sense_target, student_layer
        self.learned, self.table_lr = learned and table is not None, table_lr
        if table is not None and learned:
            self.table = torch.nn.Parameter(F.normalize(table.float(), dim=-1))
        else:
            self.register_buffer("table", None if table is None else table.float(),
                                 persistent=False)  # the teacher's: rebuilt, not saved
        self.specs = {"kd_weight": kd_weight, "sense_weight": sense_weight,
                      "temperature": temperature}
        self._total = total_steps
        self._build_schedules(total_steps or 1)
        self.step = 0

    def _build_schedules(self, total_steps: int) -> None:
        for name, sched in make_checked_schedules(self.specs, total_steps).items():
            setattr(self, name, sched)

    def on_step_begin(self, step: int, total_steps: int) -> None:
        if self._total != total_steps:
            self._build_schedules(total_steps)
            self._total = total_steps
        self.step = step

    def configure_optimizers(self, cfg, total_steps: int) -> dict:
        from ...train.loop import make_optimizer

        opts = {"main": make_optimizer(self.student, cfg, total_steps)}
        if self.learned:
            opts["table"] = make_optimizer([("table", self.table)], cfg, total_steps,
                                           lr=self.table_lr, weight_decay=0.0)
        return opts

    # ---- batches
    def collate(self, enc: LexEncoded, indices: list[int]) -> dict:
        """The padded rows plus, per target n: ``t_row`` (its row in the batch), ``t_pool``
        [N, L] (1/pieces at its wordpieces), ``t_cand`` [N, C] (table rows, -1 padding),
        ``t_gold`` [N] and ``t_vec`` [N, d] (when the data has teacher vectors)."""
        b = collate(enc, indices, with_labels=False)
        rows, tids, pos = [], [], []
        for r, i in enumerate(indices):
            for ps, t in zip(enc.pieces[i], enc.tids[i]):
                rows.append(r)
                tids.append(t)
                pos.append(ps)
        pool = torch.zeros(len(rows), b["input_ids"].shape[1], device="cpu")
        for n, ps in enumerate(pos):
            pool[n, ps] = 1.0 / len(ps)
        width = max([len(enc.cands[t]) for t in tids] + [1])
        cand = torch.full((len(tids), width), -1, dtype=torch.long, device="cpu")
        for n, t in enumerate(tids):
            cand[n, :len(enc.cands[t])] = torch.tensor(enc.cands[t], dtype=torch.long,
                                                       device="cpu")
        b.update(t_row=torch.tensor(rows, dtype=torch.long, device="cpu"), t_pool=pool,
                 t_cand=cand, t_gold=torch.tensor([enc.gold[t] for t in tids],
                                                  dtype=torch.long, device="cpu"))
        if enc.tvec is not None:
            b["t_vec"] = torch.from_numpy(enc.tvec[tids])
        return b

    def vectors(self, batch: dict) -> torch.Tensor:
        """[N, d]: each target's mean student hidden state over its wordpieces."""
        inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
        h = self.student(**inputs, output_hidden_states=True).hidden_states[self.layer]
        return torch.einsum("nl,nld->nd", batch["t_pool"].to(h.dtype), h[batch["t_row"]])

    # ---- terms
    def sense_logits(self, vec: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """[n, C] cos(vec_n, table[cand_nj]) / temperature, padded candidates MASKED."""
        table = F.normalize(self.table, dim=-1)
        c = table[cand.clamp_min(0)]
        z = torch.einsum("nd,ncd->nc", F.normalize(vec, dim=-1).to(c.dtype), c)
        return (z / self.temperature(self.step)).masked_fill(cand < 0, MASKED)

    def terms(self, batch: dict, s: torch.Tensor) -> dict[str, torch.Tensor]:
        """The terms whose weight is not 0 now (and ``sense_rows``, the targets L_sense
        counts)."""
        out: dict[str, torch.Tensor] = {}
        if self.kd_weight(self.step) > 0:
            fn = L.cosine_embedding_loss if self.kd_loss == "cosine" else L.hidden_mse_loss
            out["kd"] = fn(s, batch["t_vec"].to(s.dtype))
        if self.sense_weight(self.step) > 0 and self.table is not None:
            keep = batch["t_gold"] != IGNORE
            out["sense_rows"] = keep.sum()
            if not keep.any():
                out["sense"] = s.sum() * 0.0
            elif self.sense_target == "gold":
                out["sense"] = L.hard_ce_loss(self.sense_logits(s[keep], batch["t_cand"][keep]),
                                              batch["t_gold"][keep])
            else:
                cand = batch["t_cand"][keep]
                out["sense"] = L.soft_kd_loss(self.sense_logits(s[keep], cand),
                                              self.sense_logits(batch["t_vec"][keep],
                                                                cand).detach())
        return out

    def forward(self, batch: dict) -> dict:
        s = self.vectors(batch)
        t = self.terms(batch, s)
        loss = s.sum() * 0.0
        if "kd" in t:
            loss = loss + self.kd_weight(self.step) * t["kd"]
        if "sense" in t:
            loss = loss + self.sense_weight(self.step) * t["sense"]
        return {"loss": loss, **{k: v.detach().float() for k, v in t.items()
                                 if k != "sense_rows"}}

    def predict(self, batch: dict) -> torch.Tensor:
        return self.vectors(batch)

    def save_pretrained(self, out_dir) -> None:
        from ...models.hub import save_model

        save_model(self.student, out_dir, self.tokenizer)


@torch.no_grad()
def evaluate_targets(obj: LexicalKD, enc: LexEncoded, batch_size: int = 128,
                     device=None) -> dict:
    """On held-out rows: ``loss`` (the weighted terms, each averaged over its targets; the
    sense term here is always the gold cross-entropy), ``kd`` and ``cosine`` (to the teacher
    vectors, when ``enc`` has them), ``sense`` and ``sense_accuracy`` (argmax over the
    candidates, targets with a gold index)."""
    device = device or next(obj.parameters()).device
    was = obj.training
    obj.eval()
    sums = {"kd": 0.0, "cos": 0.0, "sense": 0.0, "acc": 0.0, "n": 0, "ns": 0}
    for idx in sorted_batches(enc.lengths, batch_size):
        b = {k: v.to(device) for k, v in obj.collate(enc, idx).items()}
        s = obj.vectors(b).float()
        n = s.shape[0]
        sums["n"] += n
        if "t_vec" in b:
            sums["kd"] += n * float(L.cosine_embedding_loss(s, b["t_vec"]) if obj.kd_loss ==
                                    "cosine" else L.hidden_mse_loss(s, b["t_vec"]))
            sums["cos"] += float(F.cosine_similarity(s, b["t_vec"], dim=-1).sum())
        keep = b["t_gold"] != IGNORE
        if obj.table is not None and keep.any():
            z = obj.sense_logits(s[keep], b["t_cand"][keep])
            k = int(keep.sum())
            sums["ns"] += k
            sums["sense"] += k * float(L.hard_ce_loss(z, b["t_gold"][keep]))
            sums["acc"] += float((z.argmax(-1) == b["t_gold"][keep]).sum())
    obj.train(was)
    out = {"targets": sums["n"], "sense_targets": sums["ns"]}
    if enc.tvec is not None and sums["n"]:
        out.update(kd=sums["kd"] / sums["n"], cosine=sums["cos"] / sums["n"])
    if sums["ns"]:
        out.update(sense=sums["sense"] / sums["ns"], sense_accuracy=sums["acc"] / sums["ns"])
    out["loss"] = (obj.kd_weight(obj.step) * out.get("kd", 0.0)
                   + obj.sense_weight(obj.step) * out.get("sense", 0.0))
    return out
