"""Label-conditional CBERT (Wu et al. 2019): a masked LM whose segment embeddings become label
embeddings, fine-tuned with whole-word masking on a task's labelled sentences through the one
loop (``lmdistill finetune --task cbert:<task> --model <mlm>``). The augmenter that samples
from such a model is :class:`lmdistill.augment.cbert.CBERT`."""

from __future__ import annotations

import time

import torch

from ...augment.cbert import LABELS_KEY, PREFIX
from ...errors import ConfigError, DataError


def condition_on_labels(model, label_names: list[str]) -> None:
    """Make an MLM label-conditional: its token-type (segment) embedding gets one row per label,
    each a copy of segment A's row (the conditional model starts as the unconditional one)."""
    base = getattr(model, model.base_model_prefix)
    old = getattr(getattr(base, "embeddings", None), "token_type_embeddings", None)
    if old is None:
        raise ConfigError(f"{type(model).__name__} has no segment embeddings to turn into label "
                          "embeddings (label-conditional CBERT needs a BERT-like MLM)")
    n = max(2, len(label_names))
    new = torch.nn.Embedding(n, old.weight.shape[1])
    with torch.no_grad():
        new.weight.copy_(old.weight[0].expand(n, -1))
    base.embeddings.token_type_embeddings = new
    if hasattr(base.embeddings, "token_type_ids"):  # BERT's buffer of default type ids
        base.embeddings.token_type_ids.zero_()
    model.config.type_vocab_size = n
    setattr(model.config, LABELS_KEY, list(label_names))


def encode_labelled(examples, tokenizer, max_length: int):
    """Sentences as MLM rows: ids, word indices (-1 for specials) and type ids = the label."""
    from ...data.mlm import MLMEncoded

    ids, types, words = [], [], []
    for e in examples:
        if e.text_b is not None:
            raise ConfigError("label-conditional CBERT is for single-sentence tasks (the "
                              "segment embedding carries the label)")
        if e.label is None:
            raise DataError(f"row {e.idx} has no label: label-conditional CBERT trains on "
                            "labelled rows")
        enc = tokenizer(e.text_a, truncation=True, max_length=max_length)
        ids.append(enc["input_ids"])
        words.append([-1 if w is None else w for w in enc.word_ids()])
        types.append([int(e.label)] * len(enc["input_ids"]))
    out = MLMEncoded(ids, types, [None] * len(ids), [e.idx for e in examples],
                     [(e.text_a, None) for e in examples], tokenizer.pad_token_id or 0)
    out.words = words
    return out


def finetune_conditional(cfg, resume: bool = False) -> dict:
    """``finetune --task cbert:<task> --model <mlm>``: label-conditional CBERT fine-tuning of
    a masked LM on the task's labelled training rows (eval: masked-token accuracy on its eval
    split with fixed masks), through the one loop; the saved model feeds
    ``augment --method cbert --mlm``."""
    from accelerate.utils import set_seed

    from ...data.mlm import WholeWordMasker
    from ...data.tasks import get_task
    from ...models import hub
    from ...models.hub import load_mlm_model
    from ...models.students import count_params
    from ...train import runner
    from ...train.loop import make_accelerator
    from .objective import MLMObjective
    from .run import MLMCorpus, _eval_fn

    t0 = time.time()
    name = cfg.data.task[len(PREFIX):]
    task = get_task(name, data_dir=cfg.data.data_dir)
    if task.is_regression:
        raise ConfigError(f"task '{name}' is a regression task: CBERT conditions on class labels")
    accelerator = make_accelerator(cfg.train.mixed_precision)
    set_seed(cfg.train.seed)
    tok = hub.load_tokenizer(cfg.model.name, cfg.model.trust_remote_code)
    train = encode_labelled(task.load(cfg.data.train_split, limit=cfg.data.limit,
                                      seed=cfg.train.seed), tok, cfg.data.max_length)
    dev = encode_labelled(task.load(cfg.data.eval_split, limit=cfg.data.eval_limit), tok,
                          cfg.data.max_length)
    model = load_mlm_model(cfg.model.name, cfg.model.trust_remote_code)
    runner.check_tokenizer(model, tok, cfg.model.name)
    have = getattr(model.config, LABELS_KEY, None)
    if have is None:
        condition_on_labels(model, task.label_names)
    elif list(have) != list(task.label_names):
        raise ConfigError(f"'{cfg.model.name}' is conditioned on labels {have}, not on task "
                          f"'{name}''s {task.label_names}")
    masker = WholeWordMasker(tok, cfg.data.mlm_probability, cfg.data.mlm_seed)
    obj = MLMObjective(model, masker, tok, cfg.data.mlm_static)
    return runner.run_training(obj, MLMCorpus(cfg.data.task), train, dev, cfg, resume,
                               accelerator, t0, {
                                   "model": cfg.model.name, "params": count_params(model),
                                   "labels": task.label_names, "train_rows": len(train)},
                               evaluate=_eval_fn(dev, masker, cfg))
