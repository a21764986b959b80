"""`train --tensorboard DIR`: the TensorBoard observer and the sample it writes per evaluation."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

SAMPLE_CHARS = 200


def require_tensorboard() -> None:
    """Fail at once, before torch loads, when the optional extra is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        from engine.errors import ConfigError
        from engine.runs.tensorboard_log import INSTALL_HINT

        raise ConfigError(
            f"--tensorboard needs the tensorboard package, which is not installed: {INSTALL_HINT}"
        )


def tensorboard_observer(
    log_dir: Path, trainer: Callable[[], object]
) -> tuple[Callable[[object], None], Callable[[], None]]:
    """(observer for trainer events, close) writing to `log_dir`; `trainer()` gives the trainer."""
    from engine.decoding.preview import preview_text
    from engine.runs.tensorboard_log import TensorBoardLog

    log = TensorBoardLog(log_dir, sampler=lambda: preview_text(trainer(), SAMPLE_CHARS))  # type: ignore[arg-type]
    return log.record, log.close
