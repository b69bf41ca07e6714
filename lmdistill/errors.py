"""User-facing errors: the CLI prints these as one line, no traceback."""


class LmdistillError(Exception):
    """Bad input or an unrecoverable run condition, explained in one line."""


class DataError(LmdistillError):
    """Unknown task, missing data directory/file/column, bad label, empty dataset."""


class ModelError(LmdistillError):
    """Unknown model, tokenizer mismatch, unreadable weights."""


class ConfigError(LmdistillError):
    """Invalid config value or a resume with a changed config."""


class CheckpointError(LmdistillError):
    """No usable checkpoint (all corrupt) or inconsistent checkpoint state."""


class TrainingDiverged(LmdistillError):
    """A non-finite loss; names the step and the last good checkpoint."""
