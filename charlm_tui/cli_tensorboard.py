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
        from engine.training.tensorboard_log import INSTALL_HINT

        raise ConfigError(
            f"--tensorboard needs the tensorboard package, which is not installed: {INSTALL_HINT}"
        )


def sample_from(trainer: object, chars: int = SAMPLE_CHARS) -> str:
    """What the model writes now: temperature 0.8 from the latest weights, seeded by step."""
    from engine.decoding.generator import Generator
    from engine.decoding.params import SamplingParams

    generator = Generator(
        trainer.snapshot(),  # type: ignore[attr-defined]
        trainer.corpus.vocab,  # type: ignore[attr-defined]
        trainer.corpus.unigram(),  # type: ignore[attr-defined]
        trainer.device,  # type: ignore[attr-defined]
    )
    params = SamplingParams(temperature=0.8, length=chars, seed=trainer.step)  # type: ignore[attr-defined]
    return generator.generate([""], params)[0]


def tensorboard_observer(
    log_dir: Path, trainer: Callable[[], object]
) -> tuple[Callable[[object], None], Callable[[], None]]:
    """(observer for trainer events, close) writing to `log_dir`; `trainer()` gives the trainer."""
    from engine.training.tensorboard_log import TensorBoardLog

    log = TensorBoardLog(log_dir, sampler=lambda: sample_from(trainer()))
    return log.record, log.close
