"""Reading and writing configs: ``section.field=value`` overrides, YAML files merged onto a
config class's defaults (:func:`build`, the one-line error for a bad field), and the YAML a run
saves beside its outputs. The config classes are in :mod:`lmdistill.config`, which re-exports
these functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError


def set_path(d: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    cur = d
    for k in keys[:-1]:
        nxt = cur.get(k)
        if nxt is None:
            nxt = cur[k] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"override '{dotted}': '{k}' is not a section")
        cur = nxt
    cur[keys[-1]] = value


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not of the form section.field=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _merge(base: dict, new: dict) -> None:
    """``new`` into ``base``, recursing into sections that are dicts on both sides."""
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def build(cls: type[BaseModel], yaml_path: str | Path | None = None,
          overrides: list[str] | dict[str, Any] | None = None) -> BaseModel:
    """Defaults < YAML file < overrides (``["train.lr=3e-5", ...]`` or a dotted dict).

    Sections merge field by field onto the class's own defaults: ``-o train.epochs=2`` on a
    :class:`DistillConfig` keeps its ``train.lr=1e-4`` (the section default of that command),
    not the plain :class:`TrainConfig` default."""
    data: dict = cls().model_dump(mode="json")
    if yaml_path:
        p = Path(yaml_path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} is not a mapping")
        _merge(data, loaded)
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides or [])
    for k, v in items:
        set_path(data, k, v)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ").replace("\n", " ")
        raise ConfigError(f"config field '{loc}': {msg}") from e


def to_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def save(cfg: BaseModel, path: str | Path) -> None:
    Path(path).write_text(to_yaml(cfg))
