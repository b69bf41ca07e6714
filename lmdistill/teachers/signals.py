"""A teacher signal, its outputs (:class:`TeacherOut`) and the online HF teacher."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ModelError
from ..names import MODEL_INPUTS


FEATURES = ("hidden", "attention", "value")


@dataclass
class TeacherOut:
    logits: torch.Tensor | None = None            # [B, C]; [K, B, C] for several teachers
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)     # layer -> [B, L, D]
    attention: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [B, H, L, L]
    value: dict[int, torch.Tensor] = field(default_factory=dict)      # layer -> [B, L, D]
    weights: torch.Tensor | None = None           # [B, K] ([B, L, K] per token) weights
    topk_values: torch.Tensor | None = None       # [B, L, k] cached top-k token logits
    topk_indices: torch.Tensor | None = None      # [B, L, k] their vocabulary ids
    topk_logz: torch.Tensor | None = None         # [B, L] logsumexp of all V logits
    topk_target: torch.Tensor | None = None       # [B, L] the logit of the row's target token


@dataclass(frozen=True)
class Needs:
    """Which intermediate features of which layers a distillation needs."""

    hidden: tuple[int, ...] = ()
    attention: tuple[int, ...] = ()
    value: tuple[int, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.hidden or self.attention or self.value)




class ValueRecorder:
    """Forward hooks on every ``attention.self.value`` projection: the i-th call in a forward
    pass is layer i's value (this also holds for shared layers applied several times)."""

    def __init__(self, model: torch.nn.Module):
        self.outputs: list[torch.Tensor] = []
        self.handles = []
        for name, mod in model.named_modules():
            if name.endswith("attention.self.value"):
                self.handles.append(mod.register_forward_hook(self._hook))
        if not self.handles:
            raise ModelError(f"{type(model).__name__} has no attention value projections to "
                             "distil from (value-relation KD needs a BERT-like model)")

    def _hook(self, _mod, _inp, out):
        self.outputs.append(out)

    def layer(self, i: int) -> torch.Tensor:
        return self.outputs[i - 1]


def run_model(model: torch.nn.Module, batch: dict, needs: Needs,
              recorder: ValueRecorder | None = None):
    """Forward ``model`` once, returning (output, TeacherOut-style features dict)."""
    if recorder is not None:
        recorder.outputs.clear()
    inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
    out = model(**inputs, output_hidden_states=bool(needs.hidden),
                output_attentions=bool(needs.attention))
    feats = TeacherOut(logits=out.logits)
    if needs.hidden:
        feats.hidden = {i: out.hidden_states[i] for i in needs.hidden}
    if needs.attention:
        feats.attention = {i: out.attentions[i - 1] for i in needs.attention}
    if needs.value:
        feats.value = {i: recorder.layer(i) for i in needs.value}
    return out, feats


def prepare_for_features(model: torch.nn.Module, needs: Needs) -> ValueRecorder | None:
    """Switch to eager attention if attention maps are needed; hook values if needed."""
    if needs.attention and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    return ValueRecorder(model) if needs.value else None


class TeacherSignal:
    needs: Needs = Needs()
    num_teachers: int = 1
    #: where the teacher's forward passes ran: "cuda:0", "cpu", "cache" (every row was cached
    #: before this run), "callable" (the user's function), "file" (a logits file)
    ran_on: str = "n/a"

    def devices(self) -> list[str]:
        """Where each teacher ran (a run records this: an online teacher left on the CPU
        while the student trains on a GPU is otherwise invisible)."""
        return [self.ran_on]

    def __call__(self, batch: dict) -> TeacherOut:  # pragma: no cover - interface
        raise NotImplementedError

    def logits_table(self) -> torch.Tensor | None:
        """The logits of every row it serves, in row order, when it already holds them (a
        cache, a logits file); None when getting them would cost a teacher pass."""
        return None


class OnlineTeacher(TeacherSignal):
    def __init__(self, model: torch.nn.Module, needs: Needs = Needs()):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.needs = needs
        self.recorder = prepare_for_features(self.model, needs)

    @property
    def ran_on(self) -> str:
        return str(next(self.model.parameters()).device)

    @torch.inference_mode()
    def __call__(self, batch: dict) -> TeacherOut:
        dev = next(self.model.parameters()).device
        b = {k: v.to(dev) for k, v in batch.items() if k in MODEL_INPUTS}
        return run_model(self.model, b, self.needs, self.recorder)[1]


def to_device(t: TeacherOut, dev: torch.device) -> TeacherOut:
    """Move every tensor of ``t`` to ``dev`` (in place; returns ``t``)."""
    if t.logits is not None:
        t.logits = t.logits.to(dev)
    for name in ("weights", "topk_values", "topk_indices", "topk_logz", "topk_target"):
        if getattr(t, name) is not None:
            setattr(t, name, getattr(t, name).to(dev))
    for kind in FEATURES:
        d = getattr(t, kind)
        for k in d:
            d[k] = d[k].to(dev)
    return t
