"""Lexical knowledge distillation: WordNet gloss classification (LMGC) for word-sense
disambiguation. The ``gloss`` task lives in :mod:`lmdistill.data.gloss` (train a teacher with
``finetune --task gloss``, distil it with ``distill --task gloss``); :mod:`.wsd` scores a model
on the Raganato sets with the official F1, next to the most-frequent-sense baseline;
:mod:`.lmms` is a nearest-neighbour sense teacher (LMMS-style sense vectors from SemCor,
``lmdistill wsd --sense-vectors DIR``); :mod:`.lexkd` and :mod:`.lexkd_run` distil it into a
small student (``lmdistill lexical-kd``) that is then scored as an NN sense encoder the same
way."""
