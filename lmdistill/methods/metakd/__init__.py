"""Meta-KD (Pan et al., ACL 2021): a meta-teacher trained across domains, then
meta-distillation into per-domain students weighted per instance by transferable knowledge.
``prototype`` (scores), ``objective`` (meta-teacher, multi-task teacher, the Meta-KD
distillation objective), ``run`` (the pipeline with its baselines)."""
