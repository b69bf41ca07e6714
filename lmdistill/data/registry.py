"""The task registry: names and aliases -> builders, :func:`register_task`, the data directory
and :func:`get_task`."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from lmdistill.errors import DataError

from .tasks_common import AMAZON_DOMAINS, resolve_data_dir as _resolve_data_dir
from .task import Task
from .builtin import (_amazon, _cikm, _clinc, _clinc_oos, _cola, _mrpc, _qnli, _rt, _rte,
                      _sst2, _stsb, _wic)
from .generic import _EXT_FORMATS, _GENERIC_OPTIONS, generic_task


_REGISTRY: dict[str, Callable[[Path], Task]] = {
    "sst2": _sst2,
    "cola": _cola,
    "mrpc": _mrpc,
    "rte": _rte,
    "stsb": _stsb,
    "qnli": _qnli,
    "rt": _rt,
    **{f"amazon-{d}": partial(_amazon, d) for d in AMAZON_DOMAINS},
    "cikm": _cikm,
    "wic": _wic,
    "clinc150": _clinc,
    "clinc150-oos": _clinc_oos,
    "gloss": lambda d: __import__("lmdistill.data.gloss", fromlist=["gloss_task"]).gloss_task(d),
}

_ALIASES = {
    "sst-2": "sst2",
    "sts-b": "stsb",
    "rt-polarity": "rt",
    "mr": "rt",
    "cikm2018": "cikm",
    "clinc": "clinc150",
    "clinc-oos": "clinc150-oos",
}

# GLUE / related tasks whose data is not in the local data directory.
_NOT_LOCAL = {"mnli", "mnli-mm", "qqp", "wnli", "ax", "scitail", "snli"}


def register_task(name: str, factory: "Callable[[Path], Task] | Task",
                  aliases: Sequence[str] = (), replace: bool = False) -> None:
    """Add a task to the registry, so ``get_task(name)`` (and ``--task name`` on the command
    line) finds it. ``factory(data_dir) -> Task`` builds it from the data directory (or pass a
    ready :class:`Task`, e.g. ``Task.from_examples(...)``, which needs no data directory).
    Names are case-insensitive; a taken name needs ``replace=True``."""
    key = name.strip().lower().replace("_", "-")
    if not key:
        raise DataError("a task needs a name")
    if not replace and (key in _REGISTRY or key in _ALIASES):
        raise DataError(f"task '{key}' is already registered; pass replace=True to replace it")
    if isinstance(factory, Task):
        task = factory
        _REGISTRY[key] = lambda _dir: task
        _NO_DATA_DIR.add(key)
    elif callable(factory):
        _REGISTRY[key] = factory
        _NO_DATA_DIR.discard(key)
    else:
        raise DataError(f"register_task('{key}'): give a Task or a function data_dir -> Task")
    for a in aliases:
        _ALIASES[a.strip().lower().replace("_", "-")] = key


def unregister_task(name: str) -> None:
    key = name.strip().lower().replace("_", "-")
    _REGISTRY.pop(key, None)
    _NO_DATA_DIR.discard(key)
    for a in [a for a, k in _ALIASES.items() if k == key]:
        del _ALIASES[a]


#: registered tasks that are ready Task objects (no data directory needed)
_NO_DATA_DIR: set[str] = set()


def list_tasks() -> list[str]:
    """Names of the registered tasks (in registry order)."""
    return list(_REGISTRY)


# --------------------------------------------------------------------------------------------
# Data directory and lookup
# --------------------------------------------------------------------------------------------


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data directory: ``explicit`` if given, else ``$LMDISTILL_DATA``; it must exist.

    Raises DataError explaining how to set it when neither is given or the directory is missing.
    """
    return _resolve_data_dir(explicit)




def _looks_like_path(name: str) -> bool:
    return (
        "/" in name
        or "\\" in name
        or name.startswith(("~", "."))
        or Path(name).suffix.lower() in _EXT_FORMATS
    )


def get_task(name: str, data_dir: str | Path | None = None, **generic: Any) -> Task:
    """Look up a registered task (case-insensitive; ``sst-2``/``sts-b``-style aliases work) or,
    for ``file:<path>`` or a path-like name, build :func:`generic_task` from ``generic``
    (``text_a=`` is required then; the task is named after the file stem - call
    :func:`generic_task` directly to choose ``name``). ``data_dir`` is only used by registered
    tasks."""
    if name.startswith("file:"):
        return _generic_from_lookup(name[len("file:"):].removeprefix("//"), generic)
    if _looks_like_path(name):
        return _generic_from_lookup(name, generic)
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key.startswith("gloss:"):  # gloss classification on N SemCor instances (seeded)
        from .gloss import gloss_task

        n = key.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise DataError(f"task '{name}': gloss:N needs a positive number of instances")
        return gloss_task(_resolve_data_dir(data_dir), max_instances=int(n))
    if key not in _REGISTRY:
        known = ", ".join(_REGISTRY)
        if key in _NOT_LOCAL:
            raise DataError(
                f"task '{name}' is not available: its data is not in the local data directory "
                f"(and downloading is not supported); known: {known}"
            )
        close = difflib.get_close_matches(key, list(_REGISTRY) + list(_ALIASES), n=1)
        hint = f" (did you mean '{_ALIASES.get(close[0], close[0])}'?)" if close else ""
        raise DataError(
            f"unknown task '{name}'{hint}; known: {known}, or a .tsv/.csv/.jsonl/.json file path"
        )
    if generic:
        raise DataError(
            f"options {', '.join(sorted(generic))} only apply to file tasks, "
            f"not to registered task '{key}'"
        )
    if key in _NO_DATA_DIR:
        return _REGISTRY[key](None)
    return _REGISTRY[key](_resolve_data_dir(data_dir))


def _generic_from_lookup(path: str, options: dict[str, Any]) -> Task:
    unknown = sorted(set(options) - _GENERIC_OPTIONS)
    if unknown:
        allowed = ", ".join(sorted(_GENERIC_OPTIONS))
        raise DataError(
            f"unknown option(s) {', '.join(unknown)} for file task {path}; allowed: {allowed}"
        )
    if not options.get("text_a"):
        raise DataError(f"file task {path} needs text_a=<column holding the text>")
    return generic_task(path, **options)
