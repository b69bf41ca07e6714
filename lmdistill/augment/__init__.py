"""Text augmentation behind one interface: ``augmenter(texts, seed) -> [(source index, new
text)]``, texts being strings or (text_a, text_b) pairs, deterministic under the seed.
:mod:`.eda` (Wei & Zou 2019: WordNet synonyms with the right part of speech, insertion, swap,
deletion) uses the POS tagger of :mod:`.tagger` (trained once on SemCor's tags)."""
