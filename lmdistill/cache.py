"""Where lmdistill caches what it computes once (teacher outputs, probes, prototype scores,
op latencies), and the content keys those files are named by."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def cache_root() -> Path:
    """``$LMDISTILL_CACHE``, else ``~/.cache/lmdistill``."""
    return Path(os.environ.get("LMDISTILL_CACHE", Path.home() / ".cache" / "lmdistill"))


def content_key(fingerprint: str, encs, settings: dict, extras: tuple[str, ...] = ()) -> str:
    """A key over a model's fingerprint, settings, and every row of the given ``Encoded``s
    (token ids, token types, labels and the named extras): same inputs, same file."""
    import numpy as np

    h = hashlib.sha256(fingerprint.encode())
    h.update(json.dumps(settings, sort_keys=True).encode())
    for enc in encs:
        h.update(str(len(enc)).encode())
        for ids, lab in zip(enc.input_ids, enc.labels):
            h.update(np.asarray(ids, dtype=np.int32).tobytes())
            h.update(str(lab).encode())
        if enc.token_type_ids:
            for tt in enc.token_type_ids:
                h.update(np.asarray(tt, dtype=np.int8).tobytes())
        for name in extras:
            h.update(json.dumps(enc.extras.get(name)).encode())
    return h.hexdigest()[:24]
