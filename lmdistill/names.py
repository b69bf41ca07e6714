"""Names shared by the config, the CLI and the code that implements them: one list each, so a
new strategy or feature is added in one place. No imports beyond the standard library (the
config module reads these before torch is loaded)."""

#: multi-teacher prediction weighting (lmdistill.teachers.teacher_weights)
STRATEGIES = ("uniform", "confidence", "entropy", "gold", "fixed")
#: intermediate-layer KD features (lmdistill.mapping)
FEATURES = ("hidden", "attention", "value_relation", "cosine")
#: the losses each feature accepts (lmdistill.methods.kd.objective.MATCH_LOSSES computes them)
LOSSES: dict[str, tuple[str, ...]] = {
    "hidden": ("mse", "cosine"),
    "attention": ("kl", "mse"),
    "value_relation": ("kl",),
    "cosine": ("cosine",),
}
#: student builders (lmdistill.models.students.build_student)
STUDENT_KINDS = ("subset", "smaller", "shared", "bilstm", "pretrained")
#: the batch fields a model's forward takes
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
