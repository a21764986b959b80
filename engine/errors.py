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


def user_message_line(text: str) -> str:
    """`text` up to its first line break that is not inside a path: a break right after
    a token holding a "/" and right before more of that token is escaped ("\\n")."""
    head, *rest = text.split("\n")
    for part in rest:
        before = head.rsplit(None, 1)[-1] if head.strip() else ""
        if "/" not in before or not part[:1] or part[:1].isspace():
            break
        head += "\\n" + part
    return head


def first_line(message: object, default: str = "") -> str:
    """The first line of a message or exception: what fits on one line of a CLI or a notice.

    Multi-line errors (torch's, safetensors') carry their point on the first line;
    an empty message gives `default` (callers pass the exception's type name or "error").
    A `UserError`'s message is ours, written as one line: a line break inside a path it
    quotes (`/tmp/a<LF>b/c.txt: the file is empty`) is escaped, so the path stays whole.
    """
    text = str(message).strip()
    if not text:
        return default
    if isinstance(message, UserError):
        return user_message_line(text)
    return text.splitlines()[0]


class TrainingDiverged(UserError):
    """The loss or the weights stopped being finite: the run stops, its last good checkpoint stays."""


class BudgetTooShort(UserError):
    """The time budget ended before the first step: nothing was trained or saved."""


class EngineWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints one line)."""
