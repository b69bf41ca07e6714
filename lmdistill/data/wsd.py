"""Word-sense disambiguation data in the Raganato et al. (2017) format, and its scorer.

- :func:`convert_semcor` turns SemCor 3.0 in NAF (``wsd/semcor/semcor3.0_naf.tar.gz``, read
  straight from the archive) into ``semcor.data.xml`` + ``semcor.gold.key.txt``: one
  ``<text>`` per document, ``<sentence>`` per NAF sentence, ``<instance>`` for every term with
  a WordNet 3.0 lexical key (sense key = ``lemma%lexical_key``), ``<wf>`` for the other words.
  Written once into the cache and reused.
- :func:`read_raganato` reads any set of the framework (SE2, SE3, SE07, SE13, SE15, ALL, or the
  converted SemCor): sentences of tokens, and the gold keys of every instance.
- :func:`score` is the official scorer's definition: an instance answered with k keys earns
  (keys among the gold keys) / k; precision = earned / answered, recall = earned / gold
  instances, F1 their harmonic mean.
"""

from __future__ import annotations

import json
import re
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from ..errors import DataError

SETS = {"SE2": "senseval2", "SE3": "senseval3", "SE07": "semeval2007", "SE13": "semeval2013",
        "SE15": "semeval2015", "ALL": "ALL"}
_KEY_POS = {"1": "NOUN", "2": "VERB", "3": "ADJ", "4": "ADV", "5": "ADJ"}


def _upos(tag: str) -> str:
    t = (tag or "").upper()
    return ("NOUN" if t.startswith("NN") else "VERB" if t.startswith("VB") else
            "ADJ" if t.startswith("JJ") else "ADV" if t.startswith("RB") else
            "." if not t[:1].isalpha() else "X")


@dataclass
class Token:
    text: str
    lemma: str
    pos: str
    id: str | None = None  # instance id (None for a plain word)


@dataclass
class Sentence:
    id: str
    tokens: list[Token] = field(default_factory=list)

    @property
    def instances(self) -> list[tuple[int, Token]]:
        return [(i, t) for i, t in enumerate(self.tokens) if t.id]


def _resolver(wn, index_sense: Path):
    """(lexical key, synset ref, term lemma) → a WordNet 3.0 sense key. NAF lemmas are not
    always the WordNet lemma of the sense ("birthe" for birth, "the_french" for French), so:
    ``lemma%lexical_key`` when WordNet has it; else the key of the referenced synset's lemma
    with that lexical key (the synset offsets of this Debian build drift from Princeton's in
    some files, so only a synset that really carries the lexical key counts); for an adjective
    satellite, the lemma's satellite sense under the same head word; else the closest lemma (by spelling) among the WordNet keys with that lexical key; else the plain
    ``lemma%lexical_key`` (unresolvable, kept as SemCor has it)."""
    import difflib
    import warnings
    from collections import defaultdict

    known: set[str] = set()
    by_lex: dict[str, list[str]] = defaultdict(list)
    by_name: dict[str, list[str]] = defaultdict(list)
    for line in index_sense.read_text().splitlines():
        key = line.split(" ", 1)[0]
        known.add(key)
        lemma, lex = key.split("%", 1)
        by_lex[lex].append(lemma)
        by_name[lemma].append(lex)

    def resolve(lex: str, syn: str | None, lemma: str) -> str:
        lex = re.sub(r"\((a|p|ip)\)", "", lex)  # adjective position markers are not in keys
        plain = f"{lemma.lower()}%{lex}"
        if plain in known:
            return plain
        if syn and syn.startswith("eng30-"):
            try:
                off, pos = syn[6:].rsplit("-", 1)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    found = wn.synset_from_pos_and_offset(pos, int(off))
                cands = found.lemmas() if found is not None else []
            except Exception:  # noqa: BLE001 - nltk's WordNetError for a bad reference
                cands = []
            keys = [lem.key() for lem in cands if lem.key().split("%", 1)[1] == lex]
            if keys:
                return keys[0]
        by_lemma = by_name.get(lemma.lower(), [])
        parts = lex.split(":")
        if parts[0] == "5" and len(parts) == 5:  # a satellite: same lemma, same head word
            same = [k for k in by_lemma if k.split(":")[0] == "5" and
                    k.split(":")[3] == parts[3]]
            if same:
                return f"{lemma.lower()}%{same[0]}"
        close = difflib.get_close_matches(lemma.lower(), by_lex.get(lex, []), n=1, cutoff=0.75)
        if not close:
            tail = lemma.lower().split("_")[-1]
            close = [x for x in by_lex.get(lex, []) if x == tail][:1]
        return f"{close[0]}%{lex}" if close else plain
    return resolve


def _naf_sentences(xml_bytes: bytes, doc: str, resolve=None
                   ) -> tuple[list[Sentence], dict[str, list[str]]]:
    root = ET.fromstring(xml_bytes)
    words = {w.get("id"): (w.text or "", w.get("sent")) for w in root.iter("wf")}
    term_of: dict[str, tuple] = {}
    for term in root.iter("term"):
        targets = [t.get("id") for t in term.iter("target")]
        refs = list(term.iter("externalRef"))
        lex = [r.get("reference") for r in refs
               if r.get("reftype") == "lexical_key" and r.get("reference")]
        syns = [r.get("reference") for r in refs if r.get("reftype") == "synset"]
        lemma = term.get("lemma") or ""
        keys = [resolve(k, syns[n] if n < len(syns) else None, lemma) if resolve
                else f"{lemma}%{k}" for n, k in enumerate(lex)]
        if targets:
            term_of[targets[0]] = (term, targets, keys)
    sents: dict[str, Sentence] = {}
    gold: dict[str, list[str]] = {}
    skip: set[str] = set()
    for wid, (text, sent) in words.items():
        if wid in skip:
            continue
        s = sents.setdefault(sent, Sentence(f"{doc}.s{len(sents):03d}"))
        if wid in term_of:
            term, targets, keys = term_of[wid]
            skip.update(targets[1:])
            surface = " ".join(words[t][0] for t in targets if t in words)
            lemma = term.get("lemma") or surface.lower()
            if keys:
                iid = f"{s.id}.t{sum(1 for t in s.tokens if t.id):03d}"
                lemma = keys[0].split("%", 1)[0]  # the sense's WordNet lemma
                pos = _KEY_POS.get(keys[0].split("%", 1)[1][:1], "X")
                s.tokens.append(Token(surface, lemma, pos, iid))
                gold[iid] = keys
                continue
            s.tokens.append(Token(surface, lemma, _upos(term.get("pos"))))
        else:
            s.tokens.append(Token(text, text.lower(), _upos("")))
    return list(sents.values()), gold


def _write(sentences_by_doc: list[tuple[str, list[Sentence]]], xml_path: Path, source: str):
    with open(xml_path, "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8" ?>\n')
        f.write(f'<corpus lang="en" source={quoteattr(source)}>\n')
        for doc, sents in sentences_by_doc:
            f.write(f"<text id={quoteattr(doc)}>\n")
            for s in sents:
                f.write(f"<sentence id={quoteattr(s.id)}>\n")
                for t in s.tokens:
                    attrs = f"lemma={quoteattr(t.lemma)} pos={quoteattr(t.pos)}"
                    if t.id:
                        f.write(f"<instance id={quoteattr(t.id)} {attrs}>{escape(t.text)}"
                                "</instance>\n")
                    else:
                        f.write(f"<wf {attrs}>{escape(t.text)}</wf>\n")
                f.write("</sentence>\n")
            f.write("</text>\n")
        f.write("</corpus>\n")


def semcor_dir() -> Path:
    from ..cache import cache_root

    return cache_root() / "wsd" / "semcor"


def convert_semcor(data_dir=None, out_dir: str | Path | None = None,
                   progress: bool = False) -> dict:
    """SemCor 3.0 NAF → Raganato XML + keys (cached). Returns ``{"xml", "keys",
    "documents", "sentences", "instances"}``."""
    from .tasks_common import resolve_data_dir as _resolve_data_dir

    tar = _resolve_data_dir(data_dir) / "wsd" / "semcor" / "semcor3.0_naf.tar.gz"
    if not tar.exists():
        raise DataError(f"SemCor NAF archive not found: {tar}")
    out = Path(out_dir) if out_dir else semcor_dir()
    xml_path, key_path, meta = (out / "semcor.data.xml", out / "semcor.gold.key.txt",
                                out / "semcor.json")
    if meta.exists() and xml_path.exists() and key_path.exists():
        return {**json.loads(meta.read_text()), "xml": str(xml_path), "keys": str(key_path)}
    out.mkdir(parents=True, exist_ok=True)
    from .wordnet import load_wordnet

    resolve = _resolver(load_wordnet(data_dir),
                        _resolve_data_dir(data_dir) / "wordnet" / "index.sense")
    docs: list[tuple[str, list[Sentence]]] = []
    gold: dict[str, list[str]] = {}
    with tarfile.open(tar) as tf:
        members = sorted((m for m in tf.getmembers() if m.name.endswith(".naf")),
                         key=lambda m: m.name)
        it = members
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(members, desc="SemCor NAF", unit="doc")
        for k, m in enumerate(it):
            doc = f"d{k:03d}"
            sents, g = _naf_sentences(tf.extractfile(m).read(), doc, resolve)
            docs.append((doc, sents))
            gold.update(g)
    tmp_xml, tmp_key = xml_path.with_suffix(".tmp"), key_path.with_suffix(".tmp")
    _write(docs, tmp_xml, "semcor")
    tmp_key.write_text("".join(f"{i} {' '.join(ks)}\n" for i, ks in gold.items()))
    tmp_xml.rename(xml_path)
    tmp_key.rename(key_path)
    stats = {"documents": len(docs), "sentences": sum(len(s) for _, s in docs),
             "instances": len(gold)}
    meta.write_text(json.dumps(stats))
    return {**stats, "xml": str(xml_path), "keys": str(key_path)}


def read_keys(path: str | Path) -> dict[str, list[str]]:
    out = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if parts:
            out[parts[0]] = parts[1:]
    return out


def read_raganato(xml_path: str | Path, key_path: str | Path | None = None
                  ) -> tuple[list[Sentence], dict[str, list[str]]]:
    """Sentences (tokens with lemma, POS and instance ids) and the gold keys."""
    sents = []
    for _, el in ET.iterparse(str(xml_path), events=("end",)):
        if el.tag != "sentence":
            continue
        s = Sentence(el.get("id"))
        for tok in el:
            s.tokens.append(Token(tok.text or "", tok.get("lemma") or "", tok.get("pos") or "",
                                  tok.get("id") if tok.tag == "instance" else None))
        sents.append(s)
        el.clear()
    return sents, (read_keys(key_path) if key_path else {})


def evaluation_set(name: str, data_dir=None) -> tuple[list[Sentence], dict[str, list[str]]]:
    """One of SE2, SE3, SE07, SE13, SE15, ALL (names of the framework accepted too)."""
    from .tasks_common import resolve_data_dir as _resolve_data_dir

    folder = SETS.get(name.upper() if name.upper() in SETS else name, name)
    if name.lower() == "semcor":
        c = convert_semcor(data_dir)
        return read_raganato(c["xml"], c["keys"])
    d = _resolve_data_dir(data_dir) / "wsd" / "raganato" / "Evaluation_Datasets" / folder
    xml, key = d / f"{folder}.data.xml", d / f"{folder}.gold.key.txt"
    if not xml.exists():
        raise DataError(f"unknown WSD set '{name}': choose one of {', '.join(SETS)} or semcor")
    return read_raganato(xml, key)


def load_corpus(spec: str, data_dir=None) -> tuple[list[Sentence], dict[str, list[str]]]:
    """A training corpus by name: any :func:`evaluation_set` name (``semcor``, ``SE13``, ...),
    or ``name:N`` for its first N documents (documents: the first part of sentence ids, in
    sorted order), for small runs and tests."""
    name, _, n = spec.partition(":")
    sents, gold = evaluation_set(name, data_dir)
    if not n:
        return sents, gold
    if not n.isdigit() or int(n) < 1:
        raise DataError(f"corpus '{spec}': the part after ':' is a number of documents (>= 1)")
    keep = set(sorted({s.id.split(".")[0] for s in sents})[:int(n)])
    sents = [s for s in sents if s.id.split(".")[0] in keep]
    ids = {t.id for s in sents for _, t in s.instances}
    return sents, {i: k for i, k in gold.items() if i in ids}


def score(gold: dict[str, list[str]], pred: dict[str, str | list[str]]) -> dict:
    """The official scorer: precision, recall, F1 (and counts). ``pred`` maps instance ids to a
    key or a list of keys (fractional credit); an id not in ``gold`` is an error."""
    unknown = [i for i in pred if i not in gold]
    if unknown:
        raise DataError(f"{len(unknown)} predicted instance(s) not in the gold keys, e.g. "
                        f"'{unknown[0]}'")
    earned = 0.0
    answered = 0
    for i, keys in pred.items():
        keys = [keys] if isinstance(keys, str) else list(keys)
        if not keys:
            continue
        answered += 1
        g = set(gold[i])
        earned += sum(k in g for k in keys) / len(keys)
    p = earned / answered if answered else 0.0
    r = earned / len(gold) if gold else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f1, "answered": answered, "total": len(gold)}
