"""Constants shared by the task modules."""

from __future__ import annotations

ENV_VAR = "LMDISTILL_DATA"
AMAZON_DOMAINS = ["books", "dvd", "electronics", "kitchen", "airline"]
SPLIT_SEED = 13  # seed of the fixed 80/10/10 splits of rt and cikm (do not change: it defines them)

Label = int | float | None
_Row = tuple[str, "str | None", Label]  # (text_a, text_b, label) of one example
