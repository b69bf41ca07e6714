"""Task registry: named, reproducible text classification / regression datasets.

A :class:`Task` knows its label set, metrics (primary first), whether inputs are sentence pairs,
its split names, and how to read each split from the data directory into :class:`Example` rows.

Data directory
    All registered tasks read files in place below one directory (the repository's ``data``
    folder layout, e.g. ``/work/shared/data``), chosen by :func:`data_dir`: an explicit
    argument (the CLI's ``--data-dir``), else the ``LMDISTILL_DATA`` environment variable.
    Nothing is downloaded.

Registered tasks (see each builder's docstring, also available as ``Task.description``)
    ``sst2 cola mrpc rte stsb qnli rt amazon-{books,dvd,electronics,kitchen,airline} cikm
    clinc150 clinc150-oos wic``. Tasks without an official split (``rt``, ``cikm``) use a fixed,
    seeded 80/10/10 shuffle so every run and every machine sees the same split.

Local files
    ``get_task("file:/path/x.csv", text_a="sentence")`` (or any name that looks like a path)
    builds a task from a local TSV/CSV/JSONL/JSON file via :func:`generic_task`.

Labels
    ``Example.label`` is the class id (index into ``Task.label_names``) for classification, a
    float for regression (``label_names is None``), ``None`` for unlabelled data. A label not in
    the label set raises :class:`~lmdistill.errors.DataError` naming file and line.
"""

from __future__ import annotations

# The task code lives in four modules (issue 8): task.py (the model), builtin.py (the datasets),
# registry.py (names, register_task, get_task), generic.py (local files). This module keeps the
# one import path everything uses.
from .generic import generic_task
from .registry import data_dir, get_task, list_tasks, register_task, unregister_task
from .task import Example, Task, _fixed_split  # noqa: F401 - _fixed_split: the rt/cikm split
from .tasks_common import AMAZON_DOMAINS, ENV_VAR

__all__ = [
    "AMAZON_DOMAINS",
    "ENV_VAR",
    "Example",
    "Task",
    "data_dir",
    "generic_task",
    "get_task",
    "list_tasks",
    "register_task",
    "unregister_task",
]
