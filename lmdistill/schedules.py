"""Step-dependent values (temperatures, loss weights): ``Schedule`` and ``make_schedule``.

Pure Python (no torch), so configs validate schedule specs when they are built, before any
model or data loads. ``check_range`` bounds both ends of a schedule: the kinds here are
monotone, so their two ends bound every step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lmdistill.errors import ConfigError


class ScheduleError(ConfigError, ValueError):
    """An invalid schedule spec (a config error, and a ValueError)."""



class Schedule:
    """A step-dependent value (temperature, loss weight): ``sched(step) -> float``.

    Build with :meth:`constant`, :meth:`linear` or :meth:`cosine`. Steps are
    clamped to [0, total_steps]: before 0 the start value, after the end the end
    value.
    """

    KINDS = ("constant", "linear", "cosine")

    def __init__(self, kind: str, start: float, end: float | None = None, total_steps: int | None = None):
        if kind not in self.KINDS:
            raise ScheduleError(f"schedule kind must be one of {self.KINDS}, got {kind!r}")
        self.kind = kind
        self.start = _schedule_number(start, "start")
        self.end = self.start if end is None else _schedule_number(end, "end")
        if kind != "constant":
            if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
                raise ScheduleError(f"{kind} schedule needs total_steps as an int >= 1, got {total_steps!r}")
        self.total_steps = total_steps

    @classmethod
    def constant(cls, value: float) -> Schedule:
        return cls("constant", value)

    @classmethod
    def linear(cls, start: float, end: float, total_steps: int) -> Schedule:
        """start + (end − start) · step / total_steps."""
        return cls("linear", start, end, total_steps)

    @classmethod
    def cosine(cls, start: float, end: float, total_steps: int) -> Schedule:
        """end + (start − end) · (1 + cos(π · step / total_steps)) / 2."""
        return cls("cosine", start, end, total_steps)

    def __call__(self, step: int) -> float:
        if self.kind == "constant":
            return self.start
        frac = min(max(step, 0), self.total_steps) / self.total_steps
        if self.kind == "linear":
            return self.start + (self.end - self.start) * frac
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def __repr__(self) -> str:
        if self.kind == "constant":
            return f"Schedule.constant({self.start})"
        return f"Schedule.{self.kind}({self.start}, {self.end}, total_steps={self.total_steps})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return (self.kind, self.start, self.end, self.total_steps) == (other.kind, other.start, other.end, other.total_steps)


def _schedule_number(value: Any, name: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ScheduleError(f"schedule {name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScheduleError(f"schedule {name} must be a finite number, got {value!r}")
    return float(value)


def make_schedule(spec: Any, total_steps: int | None = None) -> Schedule:
    """Build a :class:`Schedule` from a config value.

    Accepted specs:
      * a number ``4`` or numeric string ``"4"`` -> constant;
      * ``"constant:4"``, ``"linear:4:1"``, ``"cosine:4:1"`` (start:end);
      * a dict ``{"kind": "linear", "start": 4, "end": 1}`` (``"value"`` for
        constant; ``"total_steps"`` optional, overriding the argument);
      * a ``Schedule`` (returned as is).
    ``total_steps`` (the run's optimizer steps) is required for linear/cosine.
    """
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Schedule.constant(spec)
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.split(":")]
        if len(parts) == 1:
            return Schedule.constant(_schedule_number(parts[0], "value"))
        kind, args = parts[0].lower(), parts[1:]
        if kind == "constant" and len(args) == 1:
            return Schedule.constant(_schedule_number(args[0], "value"))
        if kind in ("linear", "cosine") and len(args) == 2:
            return Schedule(kind, args[0], args[1], total_steps)
        raise ScheduleError(
            f"bad schedule {spec!r}: use a number, 'constant:V', 'linear:START:END' or 'cosine:START:END'"
        )
    if isinstance(spec, Mapping):
        spec = dict(spec)
        kind = spec.pop("kind", None)
        steps = spec.pop("total_steps", total_steps)
        if kind == "constant":
            allowed = {"value"}
        elif kind in ("linear", "cosine"):
            allowed = {"start", "end"}
        else:
            raise ScheduleError(f"schedule kind must be one of {Schedule.KINDS}, got {kind!r}")
        unknown, missing = set(spec) - allowed, allowed - set(spec)
        if unknown or missing:
            raise ScheduleError(
                f"{kind} schedule takes keys {sorted(allowed | {'kind', 'total_steps'})}; "
                + (f"unknown {sorted(unknown)} " if unknown else "")
                + (f"missing {sorted(missing)}" if missing else "")
            )
        if kind == "constant":
            return Schedule.constant(spec["value"])
        return Schedule(kind, spec["start"], spec["end"], steps)
    raise ScheduleError(f"cannot make a schedule from {spec!r}")


#: the ranges KD weights and temperatures must stay in: (low, high, low end open)
RANGES: dict[str, tuple[float, float, bool]] = {
    "alpha": (0.0, 1.0, False), "beta": (0.0, math.inf, False),
    "temperature": (0.0, math.inf, True),
    # lexical KD (lmdistill.config.LexicalSettings): the two loss weights
    "kd_weight": (0.0, math.inf, False), "sense_weight": (0.0, math.inf, False)}


def check_range(sched: Schedule, name: str, spec: Any = None) -> Schedule:
    """``sched`` if both its ends lie in ``RANGES[name]`` (α in [0, 1], β >= 0, τ > 0), else a
    :class:`ScheduleError` naming the value and the spec it came from."""
    lo, hi, open_lo = RANGES.get(name, (-math.inf, math.inf, False))
    for v in (sched.start, sched.end):
        if (v <= lo if open_lo else v < lo) or v > hi:
            bounds = f"({lo:g}, {hi:g}]" if open_lo else f"[{lo:g}, {hi:g}]"
            raise ScheduleError(f"{name} must stay in {bounds}, got {v:g}"
                                + (f" (from {spec!r})" if spec is not None else ""))
    return sched


def make_checked_schedules(specs: dict, total_steps: int) -> dict[str, Schedule]:
    """``{name: Schedule}`` for α / τ / β specs, each end checked by :func:`check_range`."""
    return {name: check_range(make_schedule(spec, total_steps), name, spec)
            for name, spec in specs.items()}
