"""AdaBERT's CNN cells (Chen et al., IJCAI 2020): the search space, the searched supernet and
the derived student, as one Hugging Face model class.

Layout of a model (``AdaBertConfig``):

- **inputs**: the teacher's word embeddings (copied in, trainable) plus a segment embedding,
  projected to ``hidden`` (128) by a learned matrix. Single sentences feed the same projection
  to both inputs of the first cell; for a sentence pair, the first input is sentence A (the
  positions of segment 0, zeros elsewhere) and the second is sentence B (segment 1), so the
  cells encode both sentences and their interaction.
- **cells**: cell k reads the outputs of cells k−2 and k−1 and has ``nodes`` (3) intermediate
  nodes; node j sums one operation per incoming edge from each earlier state (the two inputs
  and nodes < j). The cell's output is an attention over its nodes (one weight per node and
  example, from the masked mean of each node). Up to ``max_cells`` (8) cells.
- **ops** (:data:`OPS`): conv 3/5/7, dilated conv 3/5/7 (dilation 2), max pool 3, avg pool 3,
  identity, zero. Convolutions are ReLU → Conv1d → LayerNorm (a per-position norm: batch norm
  would mix statistics across padding). In the search supernet the LayerNorm has no affine
  scale and shift (as DARTS): with one, a conv's architecture gradient Σγ·∂L/∂γ + Σb·∂L/∂b
  vanishes near the norm's own stationary point, while identity and pools have no such
  factor; the derived student's convs have the affine norm.
- **padding**: every op zeroes padded positions of its input and output; pools ignore padded
  positions (max over −inf, mean over valid neighbours only), so a sentence gets the same
  outputs whatever the batch padding is.
- **head**: [masked mean; masked max] of the last cell → dropout → linear → logits.

Search mode (``genotype`` is None): every edge holds every op; the forward pass takes
``op_weights`` [edges, ops] (Gumbel samples, shared by all cells) and ``depth_weights``
[max_cells] and returns the head's logits for *every* depth (the search objective mixes them).
Derived mode (``genotype`` = ``{"cells": K, "nodes": [[[input, op], [input, op]], ...]}``):
each node keeps its two edges with their ops; K cells; a plain classifier.

Plain ``transformers`` loads a saved student once this module is imported (it registers the
config and model with the Auto classes)::

    import lmdistill.models.adabert  # noqa: F401
    from transformers import AutoModelForSequenceClassification
    model = AutoModelForSequenceClassification.from_pretrained("runs/search/model")

``lmdistill evaluate`` / ``quantize`` / ``export`` / ``bench`` take the folder as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (AutoConfig, AutoModelForSequenceClassification, PretrainedConfig,
                          PreTrainedModel)
from transformers.modeling_outputs import SequenceClassifierOutput

#: the candidate operations, in the order of the architecture logits' last axis
OPS = ("conv3", "conv5", "conv7", "dilconv3", "dilconv5", "dilconv7", "maxpool3", "avgpool3",
       "identity", "zero")


def _masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x * mask[..., None].to(x.dtype)


class Conv(nn.Module):
    """ReLU → Conv1d (same length; dilation 2 for the dilated ops) → LayerNorm, masked."""

    def __init__(self, dim: int, kernel: int, dilation: int = 1, affine: bool = True):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=dilation * (kernel - 1) // 2,
                              dilation=dilation)
        self.norm = nn.LayerNorm(dim, elementwise_affine=affine)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.conv(F.relu(_masked(x, mask)).transpose(1, 2)).transpose(1, 2)
        return _masked(self.norm(h), mask)


class MaxPool(nn.Module):
    def __init__(self, kernel: int = 3):
        super().__init__()
        self.kernel = kernel

    def forward(self, x, mask):
        # max over shifted copies (F.max_pool1d would fix the length in an ONNX export)
        k, p, n = self.kernel, self.kernel // 2, x.shape[1]
        filled = F.pad(x.masked_fill(mask[..., None] == 0, float("-inf")), (0, 0, p, k - 1 - p),
                       value=float("-inf"))
        out = filled[:, 0:n]
        for i in range(1, k):
            out = torch.maximum(out, filled[:, i:i + n])
        return _masked(out.masked_fill(mask[..., None] == 0, 0.0), mask)


class AvgPool(nn.Module):
    """Mean over the valid positions of each window (padding is not counted)."""

    def __init__(self, kernel: int = 3):
        super().__init__()
        self.kernel = kernel

    def forward(self, x, mask):
        m = mask[:, None, :].to(x.dtype)
        k, p = self.kernel, self.kernel // 2
        s = F.avg_pool1d((_masked(x, mask)).transpose(1, 2), k, 1, p, count_include_pad=True)
        n = F.avg_pool1d(m, k, 1, p, count_include_pad=True)
        return _masked((s / n.clamp(min=1e-6)).transpose(1, 2), mask)


class Identity(nn.Module):
    def forward(self, x, mask):
        return _masked(x, mask)


class Zero(nn.Module):
    def forward(self, x, mask):
        return torch.zeros_like(x)


def make_op(name: str, dim: int, affine: bool = True) -> nn.Module:
    """``affine=False``: a conv's LayerNorm without scale and shift (the search supernet)."""
    if name.startswith("dilconv"):
        return Conv(dim, int(name[7:]), dilation=2, affine=affine)
    if name.startswith("conv"):
        return Conv(dim, int(name[4:]), affine=affine)
    return {"maxpool3": lambda: MaxPool(3), "avgpool3": lambda: AvgPool(3),
            "identity": Identity, "zero": Zero}[name]()


def edges_of(nodes: int) -> list[tuple[int, int]]:
    """(input state, node) for every edge of a cell: states 0, 1 are the cell's inputs, state
    2 + j is node j; node j reads states 0 .. 1 + j."""
    return [(i, j) for j in range(nodes) for i in range(2 + j)]


class NodeAttention(nn.Module):
    """Cell output = Σ_j a_j · node_j, a = softmax_j(v · tanh(W · masked-mean(node_j)))."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.score = nn.Linear(dim, 1, bias=False)

    def forward(self, nodes: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        stack = torch.stack(nodes, 1)  # [B, N, L, D]
        m = mask[:, None, :, None].to(stack.dtype)
        pooled = (stack * m).sum(2) / m.sum(2).clamp(min=1)  # [B, N, D]
        a = self.score(torch.tanh(self.proj(pooled))).softmax(1)  # [B, N, 1]
        return (stack * a[..., None]).sum(1)


class SearchCell(nn.Module):
    """Every op on every edge; mixed by the (shared) op weights [edges, ops]."""

    def __init__(self, dim: int, nodes: int, ops: tuple[str, ...]):
        super().__init__()
        self.nodes, self.ops = nodes, ops
        self.edges = nn.ModuleList(nn.ModuleList(make_op(o, dim, affine=False) for o in ops)
                                   for _ in edges_of(nodes))
        self.attend = NodeAttention(dim)

    def forward(self, s0, s1, mask, op_weights, sampled: bool = False):
        """``sampled``: ``op_weights`` are hard one-hot samples; only the sampled op of each
        edge is computed (GDAS, Dong & Yang 2019): forward value unchanged, the gradient
        reaches the logits through the sampled op's weight only."""
        states = [s0, s1]
        e = 0
        for j in range(self.nodes):
            acc = 0
            for i in range(2 + j):
                w = op_weights[e]
                chosen = [int(w.argmax())] if sampled else range(len(self.ops))
                for o in chosen:
                    if self.ops[o] == "zero":
                        continue  # w·0: contributes nothing, and its weight's gradient is 0
                    acc = acc + w[o] * self.edges[e][o](states[i], mask)
                e += 1
            states.append(acc if torch.is_tensor(acc) else torch.zeros_like(s0))
        return self.attend(states[2:], mask)


class DerivedCell(nn.Module):
    """The derived cell: node j = Σ over its kept edges (input, op) of op(input)."""

    def __init__(self, dim: int, genotype_nodes: list[list[list]]):
        super().__init__()
        self.spec = [[(int(i), str(o)) for i, o in node] for node in genotype_nodes]
        self.node_ops = nn.ModuleList(nn.ModuleList(make_op(o, dim) for _, o in node)
                                      for node in self.spec)
        self.attend = NodeAttention(dim)

    def forward(self, s0, s1, mask):
        states = [s0, s1]
        for node, ops in zip(self.spec, self.node_ops):
            states.append(sum(op(states[i], mask) for (i, _), op in zip(node, ops)))
        return self.attend(states[2:], mask)


class AdaBertConfig(PretrainedConfig):
    model_type = "lmdistill-adabert"

    def __init__(self, vocab_size: int = 30522, embedding_size: int = 384, hidden: int = 128,
                 max_cells: int = 8, nodes: int = 3, ops: list[str] | None = None,
                 genotype: dict | None = None, dropout: float = 0.1, type_vocab_size: int = 2,
                 pair: bool = False, pad_token_id: int = 0, **kw):
        super().__init__(pad_token_id=pad_token_id, **kw)
        self.vocab_size, self.embedding_size, self.hidden = vocab_size, embedding_size, hidden
        self.max_cells, self.nodes = max_cells, nodes
        self.ops = list(ops or OPS)
        self.genotype = genotype
        self.dropout, self.type_vocab_size, self.pair = dropout, type_vocab_size, pair


def masked_mean_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask[..., None].to(x.dtype)
    mean = (x * m).sum(1) / m.sum(1).clamp(min=1)
    mx = x.masked_fill(m == 0, float("-inf")).max(1).values
    return torch.cat([mean, torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))], -1)


class AdaBertForSequenceClassification(PreTrainedModel):
    config_class = AdaBertConfig
    base_model_prefix = "adabert"
    main_input_name = "input_ids"

    def __init__(self, config: AdaBertConfig):
        super().__init__(config)
        c = config
        self.embeddings = nn.Embedding(c.vocab_size, c.embedding_size,
                                       padding_idx=c.pad_token_id)
        self.segments = nn.Embedding(c.type_vocab_size, c.embedding_size)
        nn.init.zeros_(self.segments.weight)
        self.project = nn.Linear(c.embedding_size, c.hidden, bias=False)
        self.dropout = nn.Dropout(c.dropout)
        if c.genotype is None:
            self.cells = nn.ModuleList(SearchCell(c.hidden, c.nodes, tuple(c.ops))
                                       for _ in range(c.max_cells))
        else:
            self.cells = nn.ModuleList(DerivedCell(c.hidden, c.genotype["nodes"])
                                       for _ in range(int(c.genotype["cells"])))
        self.classifier = nn.Linear(2 * c.hidden, c.num_labels)
        self.post_init()

    def _init_weights(self, module):  # PyTorch defaults; embeddings come from the teacher
        return

    @property
    def searching(self) -> bool:
        return self.config.genotype is None

    def inputs(self, input_ids, attention_mask, token_type_ids):
        x = self.embeddings(input_ids)
        if token_type_ids is not None:
            x = x + self.segments(token_type_ids)
        x = self.dropout(_masked(self.project(x), attention_mask))
        if self.config.pair and token_type_ids is not None:
            a = attention_mask * (token_type_ids == 0)
            b = attention_mask * (token_type_ids == 1)
            return _masked(x, a), _masked(x, b)
        return x, x

    def cell_outputs(self, input_ids, attention_mask=None, token_type_ids=None,
                     op_weights=None, depth: int | None = None, sampled: bool = False
                     ) -> list[torch.Tensor]:
        """The output [B, L, hidden] of every cell (the first ``depth`` cells)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        s0, s1 = self.inputs(input_ids, attention_mask, token_type_ids)
        outs = []
        for cell in self.cells[: depth or len(self.cells)]:
            h = cell(s0, s1, attention_mask, op_weights, sampled) if self.searching else \
                cell(s0, s1, attention_mask)
            outs.append(h)
            s0, s1 = s1, h
        return outs

    def head(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(masked_mean_max(h, mask)))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None,
                op_weights=None, **_):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if self.searching and op_weights is None:
            raise ValueError("a searching AdaBERT supernet needs op_weights; derive an "
                                 "architecture first (lmdistill search)")
        outs = self.cell_outputs(input_ids, attention_mask, token_type_ids, op_weights)
        return SequenceClassifierOutput(logits=self.head(outs[-1], attention_mask))


def derive(op_logits: torch.Tensor, depth_logits: torch.Tensor, nodes: int,
           ops: tuple[str, ...] | list[str], keep: int = 2) -> dict:
    """The discrete architecture: per node, the ``keep`` incoming edges whose best non-zero op
    is most likely (DARTS' rule), each with that op; depth = argmax of the depth logits."""
    ops = list(ops)
    probs = op_logits.detach().float().softmax(-1)
    nz = [k for k, o in enumerate(ops) if o != "zero"]
    out, e = [], 0
    for j in range(nodes):
        cands = []
        for i in range(2 + j):
            p = probs[e, nz]
            best = int(p.argmax())
            cands.append((float(p[best]), i, ops[nz[best]]))
            e += 1
        cands.sort(key=lambda c: (-c[0], c[1]))
        out.append([[i, o] for _, i, o in sorted(cands[:keep], key=lambda c: c[1])])
    return {"cells": int(depth_logits.detach().argmax()) + 1, "nodes": out}


def from_genotype(genotype: dict, base: AdaBertConfig | dict, **kw
                  ) -> AdaBertForSequenceClassification:
    """A fresh (randomly initialised cells) derived student of ``genotype``."""
    d = base.to_dict() if isinstance(base, PretrainedConfig) else dict(base)
    for k in ("model_type", "transformers_version", "architectures"):
        d.pop(k, None)
    d.update(kw, genotype=genotype)
    return AdaBertForSequenceClassification(AdaBertConfig(**d))


AutoConfig.register("lmdistill-adabert", AdaBertConfig)
AutoModelForSequenceClassification.register(AdaBertConfig, AdaBertForSequenceClassification)
