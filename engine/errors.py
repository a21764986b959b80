"""Errors a user can fix.

Anything raised as a `UserError` is shown as one line (its message) and makes the
CLI exit with code 2; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: a wrong path, an undecodable file, an impossible parameter."""


class CorpusError(UserError):
    """A corpus cannot be read or is unusable for training."""


class CheckpointError(UserError):
    """A checkpoint is missing, damaged, foreign or from a newer version."""


class ConfigError(UserError):
    """A model, training or sampling parameter is out of range."""
