"""WordNet 3.0 through NLTK, from the data directory's ``wordnet/`` (no download).

NLTK reads corpora only from inside its data path (``<dir>/corpora/wordnet``) and refuses a
symlink whose target lies outside it, so the dictionary files are copied once into
``$LMDISTILL_CACHE/nltk_data/corpora/wordnet`` and that directory is put on NLTK's path.

    wn = load_wordnet(data_dir)          # nltk's WordNetCorpusReader
    senses(wn, "bank", "NOUN")          # [(sense key, gloss), ...] most frequent first
"""

from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path

from ..errors import DataError

#: universal POS (Raganato) -> WordNet POS
UPOS = {"NOUN": "n", "VERB": "v", "ADJ": "a", "ADV": "r"}
#: WordNet's satellite adjectives count as adjectives
WN_POS = {"n": "NOUN", "v": "VERB", "a": "ADJ", "s": "ADJ", "r": "ADV"}
NEEDED = ("data.noun", "index.noun", "index.sense", "lexnames")


def nltk_dir() -> Path:
    from ..cache import cache_root

    return cache_root() / "nltk_data"


def _source(data_dir) -> Path:
    from .tasks_common import resolve_data_dir as _resolve_data_dir

    src = _resolve_data_dir(data_dir) / "wordnet"
    missing = [f for f in NEEDED if not (src / f).exists()]
    if missing:
        raise DataError(f"no WordNet 3.0 in {src} (missing {', '.join(missing)})")
    return src


@lru_cache(maxsize=4)
def _load(src: str):
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    dst = nltk_dir() / "corpora" / "wordnet"
    if not (dst / "index.sense").exists():
        tmp = dst.with_name("wordnet.tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(src, tmp)
        for p in tmp.rglob("*"):  # the shared copy is read-only; the cached one need not be
            p.chmod(0o644 if p.is_file() else 0o755)
        tmp.chmod(0o755)
        if dst.exists():
            shutil.rmtree(dst)
        tmp.rename(dst)
    if str(nltk_dir()) not in nltk.data.path:
        nltk.data.path.insert(0, str(nltk_dir()))
    import warnings

    with warnings.catch_warnings():  # "multilingual functions are not available": not used
        warnings.simplefilter("ignore")
        return WordNetCorpusReader(str(dst), None)


def load_wordnet(data_dir=None):
    """NLTK's WordNet 3.0 reader over ``<data_dir>/wordnet`` (copied once into the cache)."""
    return _load(str(_source(data_dir)))


def senses(wn, lemma: str, pos: str | None = None) -> list[tuple[str, str]]:
    """``[(sense key, gloss)]`` of ``lemma`` (universal POS or None for any), in WordNet's
    order: the most frequent sense (SemCor counts) first."""
    p = UPOS.get(pos, pos) if pos else None
    return list(_senses(wn, lemma, p))


@lru_cache(maxsize=200_000)
def _senses(wn, lemma: str, p: str | None) -> tuple[tuple[str, str], ...]:
    out, seen = [], set()
    for syn in wn.synsets(lemma.replace(" ", "_"), p):
        for lem in syn.lemmas():
            if lem.name().lower() == lemma.lower().replace(" ", "_"):
                key = lem.key()
                if key not in seen:
                    seen.add(key)
                    out.append((key, syn.definition()))
                break
    return tuple(out)


@lru_cache(maxsize=200_000)
def sense_count(wn, key: str) -> int:
    """How often the sense ``key`` is tagged in WordNet's sense-tagged corpora (the counts its
    most-frequent-first order comes from; 0 when untagged)."""
    try:
        return int(wn.lemma_from_key(key).count())
    except Exception:  # noqa: BLE001 - a key WordNet does not know has no count
        return 0
