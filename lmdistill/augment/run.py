"""``lmdistill augment``: augmented copies of a task's training rows (or a text file) → JSONL
(``text_a``, ``text_b``, ``source`` = the row it came from, ``label`` = that row's gold label,
``method``). Feed them to distillation as unlabelled text (the teacher labels them)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError

METHODS = ("eda", "cbert")


def make_augmenter(method: str, data_dir=None, n_aug: int = 4, mlm: str | None = None, **kw):
    if method == "eda":
        from ..data.wordnet import load_wordnet
        from .eda import EDA
        from .tagger import get_tagger

        tagger = get_tagger(None if data_dir is None else str(data_dir))
        return EDA(load_wordnet(data_dir), lambda ws: [t for _, t in tagger.tag(ws)],
                   n_aug=n_aug, **kw)
    if method == "cbert":
        if not mlm:
            raise ConfigError("cbert needs a masked LM (--mlm: a folder from `finetune --task "
                              "mlm:<corpus>` or a hub MLM)")
        from .cbert import CBERT

        return CBERT(mlm, n_aug=n_aug, **kw)
    raise ConfigError(f"unknown augmentation method '{method}'; choose one of "
                      f"{', '.join(METHODS)}")


def augment_rows(aug, texts: list, seed: int, labels: list | None = None) -> list:
    """``aug`` over ``texts``: ``[(source index, augmented text)]``; a label-conditional CBERT
    (an MLM from ``finetune --task cbert:<task>``) is given the rows' labels."""
    if getattr(aug, "labels", None) is not None:
        return aug(texts, seed, labels if labels is not None else [None] * len(texts))
    return aug(texts, seed)


def augment(method: str, output: str | Path, task: str | None = None,
            input_file: str | None = None, data_dir=None, split: str = "train",
            limit: int | None = None, n_aug: int = 4, seed: int = 0,
            mlm: str | None = None) -> dict:
    if (task is None) == (input_file is None):
        raise ConfigError("give exactly one of --task or --input")
    if task is not None:
        from ..data.tasks import get_task

        rows = get_task(task, data_dir=data_dir).load(split, limit=limit, seed=seed)
        texts = [(e.text_a, e.text_b) if e.text_b is not None else e.text_a for e in rows]
        labels = [e.label for e in rows]
    else:
        p = Path(input_file)
        if not p.exists():
            raise ConfigError(f"input file {p} does not exist")
        texts = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()][:limit]
        labels = [None] * len(texts)
    aug = make_augmenter(method, data_dir, n_aug, mlm)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(out, "w") as f:
        for src, t in augment_rows(aug, texts, seed, labels):
            a, b = t if isinstance(t, tuple) else (t, None)
            f.write(json.dumps({"text_a": a, "text_b": b, "source": src,
                                "label": labels[src], "method": method}) + "\n")
            n += 1
    return {"method": method, "inputs": len(texts), "outputs": n, "file": str(out)}


def read_augmented(path: str | Path) -> list[str | tuple[str, str]]:
    """The texts of an ``augment`` file, ready for ``distill(..., extra_texts=...)``."""
    out = []
    for ln in Path(path).read_text().splitlines():
        if ln.strip():
            r = json.loads(ln)
            out.append((r["text_a"], r["text_b"]) if r.get("text_b") is not None
                       else r["text_a"])
    return out


def read_texts(path: str | Path) -> list[str | tuple[str, str]]:
    """Unlabelled text for distillation: an ``augment`` JSONL file, or one text a line (a tab
    separates the two sides of a pair)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"unlabelled text file {p} does not exist")
    if p.suffix == ".jsonl":
        return read_augmented(p)
    out: list[str | tuple[str, str]] = []
    for ln in p.read_text().splitlines():
        if ln.strip():
            a, _, b = ln.partition("\t")
            out.append((a, b) if b else a)
    if not out:
        raise ConfigError(f"unlabelled text file {p} is empty")
    return out
