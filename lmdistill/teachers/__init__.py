"""Teacher signals: what a student learns from, wherever it comes from.

A teacher signal is bound to one encoded dataset (``Encoded``) and maps a collated batch
(which carries ``index``: positions in that dataset) to a :class:`TeacherOut`.

- :class:`OnlineTeacher`   an HF model in eval mode under ``torch.inference_mode``; returns the
  logits and, if asked, the hidden states / attentions / attention values of chosen layers.
- :class:`CachedTeacher`   the same outputs computed once per example and stored on disk
  (safetensors shards, flattened per token), keyed by the teacher (weights, config, features)
  and each example's token ids, so later epochs and runs skip the teacher entirely and added
  rows cost only their own forward pass.
- :class:`CallableTeacher` bring your own teacher: any ``fn(texts) -> logits`` with its own
  tokenizer (texts are ``str`` or ``(str, str)`` pairs). Logit KD only.
- :class:`LogitsFileTeacher` precomputed logits from a file (``.npy`` [N, C] aligned with the
  split's rows, or JSONL ``{"idx": i, "logits": [...]}``). Logit KD only.
- :class:`MultiTeacher`   several teachers; returns each one's logits plus per-example weights
  from a named strategy (see :func:`teacher_weights`); the objective mixes the distributions.

Layers use the ``hidden_states`` numbering (0 = embeddings, i = output of layer i);
attentions and values of layer i are those computed inside layer i.

Modules: :mod:`.signals` (the interface, the online teacher), :mod:`.cache`, :mod:`.external`
(callables, logits files), :mod:`.multi` (weighting and mixing several teachers).
"""


from __future__ import annotations

from ..names import MODEL_INPUTS, STRATEGIES  # noqa: F401 - re-exported
from .cache import (CachedTeacher, available_memory, cache_bytes,  # noqa: F401
                    default_cache_dir, example_key, fingerprint_model, topk_probs)
from .external import CallableTeacher, LogitsFileTeacher  # noqa: F401
from .multi import MultiTeacher, check_strategy, mix, teacher_weights  # noqa: F401
from .signals import (FEATURES, Needs, OnlineTeacher, TeacherOut, TeacherSignal,  # noqa: F401
                      ValueRecorder, prepare_for_features, run_model, to_device)
