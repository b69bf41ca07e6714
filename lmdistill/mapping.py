"""Layer mappings between teacher and student, and layer matches as plain data.

Layer indexing convention
=========================
Layers are numbered like the HF ``hidden_states`` tuple (``output_hidden_states=True``):

* ``0``      = embeddings output,
* ``1..N``   = outputs of transformer layers 1..N.

Attentions have no embedding entry: for attention-like features (``"attention"``,
``"value_relation"``) layer ``i`` means transformer layer ``i`` (1-based), i.e.
``attentions[i - 1]``; layer 0 is invalid there. :attr:`LayerMatch.student_index`
/ :attr:`LayerMatch.teacher_index` give the tuple index to use.

A mapping is a sorted list of ``(student_layer, teacher_layer)`` pairs. Presets
(:data:`PRESETS`) include the embedding pair ``(0, 0)`` by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from lmdistill.errors import ConfigError
from lmdistill.names import FEATURES, LOSSES

__all__ = [
    "MappingError",
    "uniform",
    "last_k",
    "first_k",
    "skip",
    "explicit",
    "PRESETS",
    "resolve_mapping",
    "FEATURES",
    "LOSSES",
    "DEFAULT_LOSS",
    "LayerMatch",
    "build_matches",
    "Projections",
]

Pair = tuple[int, int]
Feature = Literal[FEATURES]
#: features indexed into the ``attentions`` tuple (no embedding layer 0)
ATTENTION_FEATURES: frozenset[str] = frozenset({"attention", "value_relation"})
#: features compared in hidden space, which need a projection when widths differ
PROJECTED_FEATURES: frozenset[str] = frozenset({"hidden", "cosine"})
DEFAULT_LOSS: dict[str, str] = {"hidden": "mse", "attention": "kl", "value_relation": "kl", "cosine": "cosine"}


class MappingError(ConfigError, ValueError):
    """An invalid layer mapping / layer match (a config error, and a ValueError)."""


# --------------------------------------------------------------------------- mappings


def _check_depths(n_teacher: Any, n_student: Any) -> None:
    for name, n in (("n_teacher", n_teacher), ("n_student", n_student)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise MappingError(f"{name} must be an int >= 1 (number of transformer layers), got {n!r}")
    if n_student > n_teacher:
        raise MappingError(
            f"student has more layers ({n_student}) than the teacher ({n_teacher}): give an explicit mapping"
        )


def _with_embeddings(pairs: list[Pair], include_embeddings: bool) -> list[Pair]:
    return ([(0, 0)] if include_embeddings else []) + pairs


def uniform(n_teacher: int, n_student: int, include_embeddings: bool = True) -> list[Pair]:
    """Student layer i -> teacher layer round(i · n_teacher / n_student) (TinyBERT's g(m) = m·N/M).

    ``uniform(6, 3) == [(0, 0), (1, 2), (2, 4), (3, 6)]``; the last student layer
    always maps to the last teacher layer. Ties round half up.
    """
    _check_depths(n_teacher, n_student)
    pairs = [(i, (2 * i * n_teacher + n_student) // (2 * n_student)) for i in range(1, n_student + 1)]
    return _with_embeddings(pairs, include_embeddings)


def last_k(n_teacher: int, n_student: int, include_embeddings: bool = True) -> list[Pair]:
    """Student layer i -> teacher layer n_teacher − n_student + i (the top layers).

    ``last_k(6, 3) == [(0, 0), (1, 4), (2, 5), (3, 6)]``.
    """
    _check_depths(n_teacher, n_student)
    pairs = [(i, n_teacher - n_student + i) for i in range(1, n_student + 1)]
    return _with_embeddings(pairs, include_embeddings)


def first_k(n_teacher: int, n_student: int, include_embeddings: bool = True) -> list[Pair]:
    """Student layer i -> teacher layer i (the bottom layers; DistilBERT-style init).

    ``first_k(6, 3) == [(0, 0), (1, 1), (2, 2), (3, 3)]``.
    """
    _check_depths(n_teacher, n_student)
    return _with_embeddings([(i, i) for i in range(1, n_student + 1)], include_embeddings)


def skip(n_teacher: int, n_student: int, every: int | None = None, include_embeddings: bool = True) -> list[Pair]:
    """Student layer i -> teacher layer i · every (every k-th teacher layer).

    ``every`` defaults to n_teacher // n_student (then equal to :func:`uniform`
    when the depths divide). Requires n_student · every <= n_teacher.
    ``skip(12, 3, every=2) == [(0, 0), (1, 2), (2, 4), (3, 6)]``.
    """
    _check_depths(n_teacher, n_student)
    if every is None:
        every = n_teacher // n_student
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise MappingError(f"skip: every must be an int >= 1, got {every!r}")
    if n_student * every > n_teacher:
        raise MappingError(
            f"skip: student layer {n_student} would map to teacher layer {n_student * every}, "
            f"but the teacher has only {n_teacher} layers (every={every})"
        )
    return _with_embeddings([(i, i * every) for i in range(1, n_student + 1)], include_embeddings)


def _as_layer(x: Any) -> int | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if isinstance(x, str) and x.strip().lstrip("-").isdigit():
        return int(x.strip())
    return None


def explicit(
    pairs: Iterable[Any] | Mapping[Any, Any],
    n_teacher: int | None = None,
    n_student: int | None = None,
) -> list[Pair]:
    """Validate an explicit mapping and return it sorted by student layer.

    ``pairs`` is a list of ``(student_layer, teacher_layer)`` or a dict
    ``{student_layer: teacher_layer}`` (string digits, as from JSON, are fine).
    Layers must be ints >= 0, within 0..n_student / 0..n_teacher when the depths
    are given, and each student layer may appear only once. Errors name the bad pair.
    """
    if isinstance(pairs, Mapping):
        items: list[Any] = list(pairs.items())
    elif isinstance(pairs, (str, bytes)) or not isinstance(pairs, Iterable):
        raise MappingError(f"a layer mapping must be a list of (student, teacher) pairs or a dict, got {pairs!r}")
    else:
        items = list(pairs)
    if not items:
        raise MappingError("layer mapping is empty")
    out: dict[int, int] = {}
    for raw in items:
        if isinstance(raw, (str, bytes)) or not isinstance(raw, Iterable):
            raise MappingError(f"layer pair {raw!r} is not a (student_layer, teacher_layer) pair")
        pair = tuple(raw)
        if len(pair) != 2:
            raise MappingError(f"layer pair {raw!r} is not a (student_layer, teacher_layer) pair")
        s, t = _as_layer(pair[0]), _as_layer(pair[1])
        if s is None or t is None:
            raise MappingError(f"layer pair {raw!r}: layers must be ints")
        if s < 0 or t < 0:
            raise MappingError(f"layer pair ({s}, {t}): layers must be >= 0 (0 = embeddings)")
        if n_student is not None and s > n_student:
            raise MappingError(f"layer pair ({s}, {t}): student has layers 0..{n_student} only")
        if n_teacher is not None and t > n_teacher:
            raise MappingError(f"layer pair ({s}, {t}): teacher has layers 0..{n_teacher} only")
        if s in out:
            raise MappingError(f"layer pair ({s}, {t}): student layer {s} is already mapped to teacher layer {out[s]}")
        out[s] = t
    return sorted(out.items())


#: named mappings: name -> fn(n_teacher, n_student, include_embeddings=...) (``skip`` also takes ``every``)
PRESETS: dict[str, Callable[..., list[Pair]]] = {
    "uniform": uniform,
    "last": last_k,
    "first": first_k,
    "skip": skip,
}


def resolve_mapping(
    spec: str | Iterable[Any] | Mapping[Any, Any],
    n_teacher: int,
    n_student: int,
    include_embeddings: bool = True,
) -> list[Pair]:
    """Turn a mapping spec into validated ``(student_layer, teacher_layer)`` pairs.

    ``spec``: a preset name from :data:`PRESETS` (``"uniform"``, ``"last"``,
    ``"first"``, ``"skip"``, or ``"skip:K"`` for every K-th teacher layer), a list
    of pairs, or a dict ``{student_layer: teacher_layer}``. ``include_embeddings``
    applies to presets only; explicit mappings are used as given. Every pair is
    range-checked against the depths.
    """
    _check_depths(n_teacher, n_student)
    if isinstance(spec, str):
        name, _, arg = spec.strip().partition(":")
        name = name.strip().lower()
        if name not in PRESETS:
            raise MappingError(f"unknown layer mapping {spec!r}; presets: {sorted(PRESETS)} (or give explicit pairs)")
        if arg:
            every = _as_layer(arg)
            if name != "skip" or every is None:
                raise MappingError(f"bad layer mapping {spec!r}: only 'skip:K' takes an int argument")
            pairs = skip(n_teacher, n_student, every, include_embeddings=include_embeddings)
        else:
            pairs = PRESETS[name](n_teacher, n_student, include_embeddings=include_embeddings)
        return explicit(pairs, n_teacher, n_student)
    return explicit(spec, n_teacher, n_student)


# --------------------------------------------------------------------------- layer matches


@dataclass
class LayerMatch:
    """One intermediate-layer distillation term, as plain data (TextBrewer style).

    Attributes:
        student_layer, teacher_layer: layer numbers (module convention: 0 =
            embeddings; for attention features 1-based transformer layers).
        feature: what is compared: ``"hidden"`` (hidden states), ``"attention"``
            (attention probabilities), ``"value_relation"`` (MiniLM value
            relations), ``"cosine"`` (hidden states, cosine).
        loss: loss name, one of :data:`LOSSES` [feature]; None -> :data:`DEFAULT_LOSS`.
        weight: multiplier of this term (>= 0).
        proj: projection of the student hidden states: None = only when the widths
            differ, True = always (even for equal widths), False = never (then
            the widths must match). Only meaningful for hidden/cosine features.
    """

    student_layer: int
    teacher_layer: int
    feature: Feature
    loss: str | None = None
    weight: float = 1.0
    proj: bool | None = None

    def __post_init__(self) -> None:
        if self.feature not in FEATURES:
            raise MappingError(f"unknown feature {self.feature!r}; choose from {FEATURES}")
        for name in ("student_layer", "teacher_layer"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise MappingError(f"{self.describe()}: {name} must be an int >= 0, got {v!r}")
        if self.feature in ATTENTION_FEATURES and (self.student_layer < 1 or self.teacher_layer < 1):
            raise MappingError(
                f"{self.describe()}: {self.feature} needs transformer layers >= 1 (layer 0 is the embeddings, which have no attention)"
            )
        if self.loss is None:
            self.loss = DEFAULT_LOSS[self.feature]
        if self.loss not in LOSSES[self.feature]:
            raise MappingError(f"{self.describe()}: loss {self.loss!r} not allowed for {self.feature}; choose from {LOSSES[self.feature]}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or not (0 <= self.weight < float("inf")):
            raise MappingError(f"{self.describe()}: weight must be a finite number >= 0, got {self.weight!r}")
        self.weight = float(self.weight)
        if self.proj is not None and not isinstance(self.proj, bool):
            raise MappingError(f"{self.describe()}: proj must be True, False or None, got {self.proj!r}")
        if self.proj is not None and self.feature not in PROJECTED_FEATURES:
            raise MappingError(f"{self.describe()}: proj is only meaningful for {sorted(PROJECTED_FEATURES)} features")

    def describe(self) -> str:
        return f"layer match (student {self.student_layer} -> teacher {self.teacher_layer}, {self.feature})"

    @property
    def key(self) -> str:
        """``"s{student}_t{teacher}"``: the key of its projection in :class:`Projections`."""
        return f"s{self.student_layer}_t{self.teacher_layer}"

    @property
    def student_index(self) -> int:
        """Index into the student's ``hidden_states`` (hidden/cosine) or ``attentions`` tuple."""
        return self.student_layer - 1 if self.feature in ATTENTION_FEATURES else self.student_layer

    @property
    def teacher_index(self) -> int:
        """Index into the teacher's ``hidden_states`` (hidden/cosine) or ``attentions`` tuple."""
        return self.teacher_layer - 1 if self.feature in ATTENTION_FEATURES else self.teacher_layer


def build_matches(
    mapping_pairs: Iterable[Pair],
    features: Iterable[str],
    weights: float | Mapping[str, float] = 1.0,
    losses: Mapping[str, str] | None = None,
    proj: bool | None = None,
) -> list[LayerMatch]:
    """One :class:`LayerMatch` per (pair, feature).

    For attention features the embedding pair ``(0, 0)`` is skipped (embeddings
    have no attention); any other pair involving layer 0 is an error.
    ``weights``: one float for all, or ``{feature: weight}`` (missing -> 1.0).
    ``losses``: ``{feature: loss name}`` overriding :data:`DEFAULT_LOSS`.
    ``proj`` is passed to hidden/cosine matches.
    """
    pairs = explicit(list(mapping_pairs))
    feats = list(features)
    if not feats:
        raise MappingError("build_matches: no features given")
    for f in feats:
        if f not in FEATURES:
            raise MappingError(f"unknown feature {f!r}; choose from {FEATURES}")
    if len(set(feats)) != len(feats):
        raise MappingError(f"duplicate features in {feats}")
    for name, d in (("weights", weights if isinstance(weights, Mapping) else {}), ("losses", losses or {})):
        extra = set(d) - set(feats)
        if extra:
            raise MappingError(f"build_matches: {name} given for features not requested: {sorted(extra)}")
    out: list[LayerMatch] = []
    for f in feats:
        w = weights.get(f, 1.0) if isinstance(weights, Mapping) else weights
        loss = (losses or {}).get(f)
        for s, t in pairs:
            if f in ATTENTION_FEATURES and (s, t) == (0, 0):
                continue
            out.append(LayerMatch(s, t, f, loss=loss, weight=w, proj=proj if f in PROJECTED_FEATURES else None))  # type: ignore[arg-type]
    return out


# --------------------------------------------------------------------------- projections


def _width(widths: int | Mapping[int, int], layer: int, side: str) -> int:
    if isinstance(widths, Mapping):
        if layer not in widths:
            raise MappingError(f"no {side} width given for layer {layer}")
        return int(widths[layer])
    return int(widths)


class Projections(nn.Module):
    """Trainable student->teacher projections for hidden/cosine layer matches.

    One ``nn.Linear(Ds, Dt)`` per (student_layer, teacher_layer) pair that needs
    it, in a ``ModuleDict`` keyed ``"s{i}_t{j}"`` (a pair used by both hidden and
    cosine matches shares one projection). A pair needs one when Ds ≠ Dt and
    ``match.proj`` is not False, or when ``match.proj is True`` (forced). Equal
    widths otherwise get no projection (identity); ``match.proj is False`` with
    different widths is an error.

    Init: different widths use BERT's init (weights ~ N(0, 0.02), bias 0, as
    TinyBERT's ``fit_dense``); forced same-width projections start as the identity
    so training starts from the unprojected loss.

    Projections are optimised together with the student (add ``parameters()`` to
    its optimizer) and are dropped at export unless ``keep`` is True.

    Args:
        matches: the layer matches.
        student_width / teacher_width: hidden size, or ``{layer: width}``.
        keep: export the projections with the student (default False).
    """

    def __init__(
        self,
        matches: Iterable[LayerMatch],
        student_width: int | Mapping[int, int],
        teacher_width: int | Mapping[int, int],
        keep: bool = False,
        init_std: float = 0.02,
    ):
        super().__init__()
        self.keep = bool(keep)
        self.proj = nn.ModuleDict()
        for m in matches:
            if not isinstance(m, LayerMatch):
                raise MappingError(f"Projections needs LayerMatch objects, got {m!r}")
            if m.feature not in PROJECTED_FEATURES:
                continue
            d_s = _width(student_width, m.student_layer, "student")
            d_t = _width(teacher_width, m.teacher_layer, "teacher")
            if m.proj is False:
                if d_s != d_t:
                    raise MappingError(f"{m.describe()}: proj=False but student width {d_s} != teacher width {d_t}")
                continue
            if d_s == d_t and m.proj is not True:
                continue
            if m.key in self.proj:
                existing = self.proj[m.key]
                if (existing.in_features, existing.out_features) != (d_s, d_t):  # pragma: no cover - same pair, same widths
                    raise MappingError(f"{m.describe()}: conflicting widths for projection {m.key}")
                continue
            lin = nn.Linear(d_s, d_t)
            if d_s == d_t:
                nn.init.eye_(lin.weight)
            else:
                nn.init.normal_(lin.weight, mean=0.0, std=init_std)
            nn.init.zeros_(lin.bias)
            self.proj[m.key] = lin

    def get(self, match: LayerMatch) -> nn.Module | None:
        """The projection for this match, or None (identity: use the student states as they are)."""
        if match.feature not in PROJECTED_FEATURES or match.proj is False or match.key not in self.proj:
            return None
        return self.proj[match.key]

    def keys(self) -> list[str]:
        return list(self.proj.keys())

    def __contains__(self, key: object) -> bool:
        return key in self.proj

    def extra_repr(self) -> str:
        return f"keep={self.keep}"
