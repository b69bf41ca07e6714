"""Student builders: plain functions from a teacher (or a config) to a fresh HF model.

(a) ``layer_subset``   keep some of the teacher's layers (DistilBERT-style init, e.g. [0, 2, 4])
(b) ``smaller``        a smaller config (depth, width, heads, FFN); random init, or copied from
                       the teacher wherever a tensor has the same shape
(c) ``shared_layers``  ALBERT-style cross-layer sharing: ``num_unique`` layers applied
                       ``num_layers`` times (class ``SharedBertForSequenceClassification``)
(d) ``bilstm``         Tang et al.'s BiLSTM-SOFT student on the teacher's word embeddings
                       (class ``BiLSTMForSequenceClassification``)

Every student is a ``PreTrainedModel`` and saves/loads as an HF folder (``save_pretrained`` +
safetensors); the custom ones carry their own config class, registered with the Auto*
factories on import, so ``evaluate``, quantization and export load them like any model.
"""

from __future__ import annotations

import re

import torch
from torch import nn
from transformers import (AutoConfig, AutoModel, AutoModelForSequenceClassification, BertConfig,
                          BertForSequenceClassification, BertModel, PretrainedConfig,
                          PreTrainedModel)
from transformers.modeling_outputs import SequenceClassifierOutput

from ..config import StudentConfig
from ..errors import ConfigError, ModelError

LAYER_KEY = re.compile(r"((?:encoder\.layer|transformer\.layer|encoder\.layers|layers)\.)(\d+)\.")


def count_params(model: nn.Module, without_embeddings: bool = False) -> int:
    """Parameters of ``model`` (shared tensors once); optionally without embedding tables."""
    # every nn.Embedding table counts as an embedding (e.g. the BiLSTM's segment table), as does
    # anything under an ``embeddings`` module (BERT's embedding LayerNorm)
    tables = {id(p) for m in model.modules() if isinstance(m, nn.Embedding)
              for p in m.parameters(recurse=False)}
    seen, n = set(), 0
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        if without_embeddings and ("embedding" in name or id(p) in tables):
            continue
        n += p.numel()
    return n


def num_layers(config) -> int:
    return int(getattr(config, "num_hidden_layers"))


def _copy_matching(student: nn.Module, teacher_sd: dict, layer_map: dict[int, int]) -> dict:
    """Copy teacher tensors into ``student`` where names (after mapping layer indices
    student->teacher) and shapes agree. Returns counts for reporting."""
    sd = student.state_dict()
    copied, skipped = 0, []
    for key in sd:
        m = LAYER_KEY.search(key)
        tkey = key
        if m:
            s_idx = int(m.group(2))
            if s_idx not in layer_map:
                skipped.append(key)
                continue
            tkey = key[: m.start(2)] + str(layer_map[s_idx]) + key[m.end(2):]
        t = teacher_sd.get(tkey)
        if t is not None and t.shape == sd[key].shape:
            sd[key] = t.detach().clone()
            copied += 1
        else:
            skipped.append(key)
    student.load_state_dict(sd)
    return {"copied": copied, "not_copied": skipped}


def copy_head(student: nn.Module, teacher: nn.Module) -> list[str]:
    """Initialise the student's task head from the teacher's: every tensor outside the encoder
    (``base_model_prefix``: the classifier) and the encoder's pooler, all or nothing: only when
    each of them has the same name and shape in the teacher. For a student whose base model had
    no head for this task; returns the names copied (none when widths or label counts differ)."""
    prefix = getattr(student, "base_model_prefix", "")
    s_sd, t_sd = student.state_dict(), teacher.state_dict()
    names = [k for k in s_sd if not prefix or not k.startswith(prefix + ".") or ".pooler." in k]
    if not all(k in t_sd and t_sd[k].shape == s_sd[k].shape for k in names):
        return []
    if names:
        student.load_state_dict({**s_sd, **{k: t_sd[k].detach().clone() for k in names}})
    return names


def layer_subset(teacher: PreTrainedModel, layers: list[int]) -> PreTrainedModel:
    """A student made of the teacher's embeddings, the given layers (0-based) and its head."""
    n = num_layers(teacher.config)
    bad = [i for i in layers if not 0 <= i < n]
    if not layers or bad:
        raise ModelError(f"layer subset {layers}: layers must be in 0..{n - 1}")
    config = teacher.config.__class__.from_dict(teacher.config.to_dict())
    config.num_hidden_layers = len(layers)
    student = teacher.__class__(config)
    _copy_matching(student, teacher.state_dict(), dict(enumerate(layers)))
    return student


def smaller(teacher: PreTrainedModel, num_layers_: int | None = None, hidden: int | None = None,
            heads: int | None = None, intermediate: int | None = None,
            init: str = "teacher", layers: list[int] | None = None) -> PreTrainedModel:
    """A student of the teacher's architecture with a smaller config.

    ``init="teacher"`` copies every tensor whose shape matches (student layer i from teacher
    layer ``layers[i]``, default: uniformly spread); ``init="random"`` keeps the fresh init.
    """
    d = teacher.config.to_dict()
    config = teacher.config.__class__.from_dict(d)
    if num_layers_:
        config.num_hidden_layers = num_layers_
    if hidden:
        config.hidden_size = hidden
    if heads:
        config.num_attention_heads = heads
    if intermediate:
        config.intermediate_size = intermediate
    if config.hidden_size % config.num_attention_heads:
        raise ModelError(f"hidden size {config.hidden_size} is not divisible by "
                         f"{config.num_attention_heads} heads")
    if init not in ("teacher", "random"):
        raise ModelError(f"init must be 'teacher' or 'random', not '{init}'")
    n_t, n_s = num_layers(teacher.config), config.num_hidden_layers
    if layers is not None and (len(layers) != n_s or any(not 0 <= i < n_t for i in layers)):
        raise ModelError(f"smaller student: layers {layers} must be {n_s} teacher layers "
                         f"in 0..{n_t - 1}")
    student = teacher.__class__(config)
    if init == "teacher":
        # the uniform map of lmdistill.mapping (student layer i+1 -> teacher layer
        # (i+1)·n_t/n_s, ties rounded half up, in integers), as 0-based indices
        layers = layers or [max((2 * (i + 1) * n_t + n_s) // (2 * n_s) - 1, 0)
                            for i in range(n_s)]
        _copy_matching(student, teacher.state_dict(), dict(enumerate(layers)))
    return student


# ------------------------------------------------------------------ (c) shared layers
class RepeatedLayers(nn.ModuleList):
    """Holds ``num_unique`` layers but iterates as ``total`` applications (layer i % unique).
    Parameters are registered once, so they are saved, counted and optimised once."""

    def __init__(self, layers, total: int):
        nn.Module.__init__(self)
        self.total = 0  # ModuleList.__init__ appends at offset len(self)
        super().__init__(layers)
        self.total = total

    def __iter__(self):
        unique = [self._modules[str(i)] for i in range(len(self._modules))]
        return iter(unique[i % len(unique)] for i in range(self.total))

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, idx):
        if isinstance(idx, int):
            return self._modules[str(idx % len(self._modules))]
        return super().__getitem__(idx)


class SharedBertConfig(BertConfig):
    model_type = "lmdistill-shared-bert"

    def __init__(self, num_unique_layers: int = 1, **kw):
        super().__init__(**kw)
        self.num_unique_layers = num_unique_layers


def _share_layers(bert: BertModel, config: SharedBertConfig) -> None:
    u = config.num_unique_layers
    bert.encoder.layer = RepeatedLayers(list(bert.encoder.layer)[:u], config.num_hidden_layers)


class SharedBertModel(BertModel):
    config_class = SharedBertConfig

    def __init__(self, config: SharedBertConfig, add_pooling_layer: bool = True):
        super().__init__(config, add_pooling_layer=add_pooling_layer)
        _share_layers(self, config)


class SharedBertForSequenceClassification(BertForSequenceClassification):
    config_class = SharedBertConfig

    def __init__(self, config: SharedBertConfig):
        super().__init__(config)
        _share_layers(self.bert, config)


def shared_layers(teacher: PreTrainedModel, num_layers_: int, num_unique: int = 1,
                  teacher_layers: list[int] | None = None) -> SharedBertForSequenceClassification:
    """ALBERT-style: ``num_unique`` distinct layers (copied from ``teacher_layers`` of a BERT
    teacher, default its first ones) applied cyclically ``num_layers_`` times."""
    if teacher.config.model_type not in ("bert", "lmdistill-shared-bert"):
        raise ModelError(f"shared-layer students need a BERT teacher, not "
                         f"'{teacher.config.model_type}'")
    n_t = num_layers(teacher.config)
    if not 1 <= num_unique <= num_layers_:
        raise ModelError(f"shared-layer student: num_unique {num_unique} must be in "
                         f"1..{num_layers_} (the number of layers)")
    if teacher_layers is not None and (len(teacher_layers) != num_unique
                                       or any(not 0 <= i < n_t for i in teacher_layers)):
        raise ModelError(f"shared-layer student: teacher layers {teacher_layers} must be "
                         f"{num_unique} layers in 0..{n_t - 1}")
    d = teacher.config.to_dict()
    for k in ("model_type", "architectures", "transformers_version"):
        d.pop(k, None)
    d.update(num_hidden_layers=num_layers_, num_unique_layers=num_unique)
    config = SharedBertConfig(**d)
    student = SharedBertForSequenceClassification(config)
    tl = teacher_layers or list(range(num_unique))
    _copy_matching(student, teacher.state_dict(), dict(enumerate(tl)))
    return student


# ------------------------------------------------------------------ (d) BiLSTM
class BiLSTMConfig(PretrainedConfig):
    model_type = "lmdistill-bilstm"

    def __init__(self, vocab_size: int = 30522, embedding_size: int = 384,
                 lstm_hidden: int = 300, mlp_hidden: int = 400, dropout: float = 0.1,
                 pad_token_id: int = 0, type_vocab_size: int = 2, **kw):
        super().__init__(pad_token_id=pad_token_id, **kw)
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.lstm_hidden = lstm_hidden
        self.mlp_hidden = mlp_hidden
        self.dropout = dropout
        self.type_vocab_size = type_vocab_size


class BiLSTMForSequenceClassification(PreTrainedModel):
    """Tang et al. (2019) BiLSTM-SOFT: word embeddings -> 1-layer BiLSTM -> max-pool over valid
    tokens -> ReLU MLP -> logits. Sentence pairs are read as one sequence (with the tokenizer's
    [SEP] and a segment embedding)."""

    config_class = BiLSTMConfig
    base_model_prefix = "bilstm"
    main_input_name = "input_ids"

    def __init__(self, config: BiLSTMConfig):
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.embedding_size,
                                       padding_idx=config.pad_token_id)
        self.segments = nn.Embedding(config.type_vocab_size, config.embedding_size)
        nn.init.zeros_(self.segments.weight)
        self.lstm = nn.LSTM(config.embedding_size, config.lstm_hidden, batch_first=True,
                            bidirectional=True)
        self.dropout = nn.Dropout(config.dropout)
        self.mlp = nn.Sequential(nn.Linear(2 * config.lstm_hidden, config.mlp_hidden), nn.ReLU(),
                                 nn.Dropout(config.dropout),
                                 nn.Linear(config.mlp_hidden, config.num_labels))
        self.post_init()

    def _init_weights(self, module):  # keep PyTorch defaults; embeddings come from the teacher
        return

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, **_):
        x = self.embeddings(input_ids)
        if token_type_ids is not None:
            x = x + self.segments(token_type_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        lengths = attention_mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.dropout(x), lengths, batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                  total_length=input_ids.shape[1])
        out = out.masked_fill(attention_mask[..., None] == 0, float("-inf")).max(1).values
        logits = self.mlp(self.dropout(out))
        return SequenceClassifierOutput(logits=logits)


def bilstm(teacher: PreTrainedModel, lstm_hidden: int = 300, mlp_hidden: int = 400,
           freeze_embeddings: bool = False) -> BiLSTMForSequenceClassification:
    """A BiLSTM student whose word embeddings are copied from the teacher's."""
    emb = teacher.get_input_embeddings().weight
    config = BiLSTMConfig(vocab_size=emb.shape[0], embedding_size=emb.shape[1],
                          lstm_hidden=lstm_hidden, mlp_hidden=mlp_hidden,
                          num_labels=teacher.config.num_labels,
                          id2label=teacher.config.id2label, label2id=teacher.config.label2id,
                          pad_token_id=teacher.config.pad_token_id or 0)
    if getattr(teacher.config, "problem_type", None):
        config.problem_type = teacher.config.problem_type
    student = BiLSTMForSequenceClassification(config)
    with torch.no_grad():
        student.embeddings.weight.copy_(emb)
    student.embeddings.weight.requires_grad_(not freeze_embeddings)
    return student


AutoConfig.register("lmdistill-shared-bert", SharedBertConfig)
AutoModel.register(SharedBertConfig, SharedBertModel)
AutoModelForSequenceClassification.register(SharedBertConfig, SharedBertForSequenceClassification)
AutoConfig.register("lmdistill-bilstm", BiLSTMConfig)
AutoModelForSequenceClassification.register(BiLSTMConfig, BiLSTMForSequenceClassification)


def build_student(cfg: StudentConfig, base) -> object:
    """A fresh student of ``cfg.kind`` from ``base`` (a loaded classifier whose head matches
    the task, or a masked LM)."""
    n = num_layers(base.config) if hasattr(base.config, "num_hidden_layers") else None
    if cfg.kind == "pretrained":
        return base
    if cfg.kind == "subset":
        # the "uniform" layer mapping (ties half up), so each kept layer is the one it is
        # matched to in intermediate KD
        k = cfg.num_layers
        layers = cfg.layers or [(2 * (i + 1) * n + k) // (2 * k) - 1 for i in range(k)]
        return layer_subset(base, layers)
    if cfg.kind == "smaller":
        return smaller(base, cfg.num_layers, cfg.hidden, cfg.heads, cfg.intermediate,
                         cfg.init, cfg.layers)
    if cfg.kind == "shared":
        return shared_layers(base, cfg.num_layers, cfg.num_unique, cfg.layers)
    if cfg.kind == "bilstm":
        return bilstm(base, cfg.lstm_hidden, cfg.mlp_hidden)
    raise ConfigError(f"unknown student kind '{cfg.kind}'")
