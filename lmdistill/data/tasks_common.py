"""Constants shared by the task modules."""

from __future__ import annotations

import os
from pathlib import Path

from lmdistill.errors import DataError

ENV_VAR = "LMDISTILL_DATA"
AMAZON_DOMAINS = ["books", "dvd", "electronics", "kitchen", "airline"]
SPLIT_SEED = 13  # seed of the fixed 80/10/10 splits of rt and cikm (do not change: it defines them)

Label = int | float | None
_Row = tuple[str, "str | None", Label]  # (text_a, text_b, label) of one example


def resolve_data_dir(explicit: str | os.PathLike | None) -> Path:
    """``explicit`` if given, else ``$LMDISTILL_DATA``: an existing directory, or a DataError
    saying how to set it."""
    if explicit is not None and str(explicit) != "":
        raw, origin = str(explicit), ""
    elif os.environ.get(ENV_VAR):
        raw, origin = os.environ[ENV_VAR], f" (from {ENV_VAR})"
    else:
        raise DataError(f"no data directory given; set --data-dir or {ENV_VAR}")
    p = Path(raw).expanduser().resolve()
    if not p.exists():
        raise DataError(f"data directory {p}{origin} does not exist; set --data-dir or {ENV_VAR}")
    if not p.is_dir():
        raise DataError(f"data directory {p}{origin} is not a directory; set --data-dir or {ENV_VAR}")
    return p
