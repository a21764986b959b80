"""TensorBoard event files for a run (`--tensorboard DIR`), through the `tensorboard` package.

An optional extra (`pip install 'charlm-tui[tensorboard]'`): without it,
asking for TensorBoard is bad input with the install line, never a traceback.
It consumes the trainer's events like any other observer: logged steps become
`train/*` scalars, evaluations `val/*` scalars plus a text sample of what the
model writes at that point (the sampler is handed in by the caller, which may
use the decoding layer; training does not).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError
from engine.files import user_path

INSTALL_HINT = "pip install 'charlm-tui[tensorboard]'"


def _summary_writer_class() -> type:
    try:
        import tensorboard  # noqa: F401  (torch's writer needs it; say so in our words)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            f"--tensorboard needs the tensorboard package, which is not installed: {INSTALL_HINT}"
        ) from None
    return SummaryWriter


def tensorboard_available() -> bool:
    try:
        _summary_writer_class()
    except ConfigError:
        return False
    return True


class TensorBoardLog:
    """Writes a run's scalars and evaluation samples as TensorBoard event files."""

    def __init__(self, log_dir: str | Path, sampler: Callable[[], str] | None = None) -> None:
        writer_class = _summary_writer_class()
        path = user_path(log_dir)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--tensorboard {path}: not a directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--tensorboard {path}: {exc.strerror or exc}") from None
        self.log_dir = path
        self.writer = writer_class(log_dir=str(path))
        self.sampler = sampler

    def __call__(self, event: object) -> None:
        self.record(event)

    def record(self, event: object) -> None:
        kind = getattr(event, "kind", "")
        step = getattr(event, "step", 0)
        if kind == "step" and getattr(event, "grad_norm", None) is not None:
            self.writer.add_scalar("train/loss", event.loss, step)  # type: ignore[attr-defined]
            self.writer.add_scalar("train/lr", event.lr, step)  # type: ignore[attr-defined]
            self.writer.add_scalar("train/chars_per_s", event.chars_per_s, step)  # type: ignore[attr-defined]
            self.writer.add_scalar("train/grad_norm", event.grad_norm, step)  # type: ignore[attr-defined]
        elif kind == "eval":
            self.writer.add_scalar("val/loss", event.val_loss, step)  # type: ignore[attr-defined]
            self.writer.add_scalar("val/bpc", event.val_bpc, step)  # type: ignore[attr-defined]
            if self.sampler is not None:
                text = self.sampler()
                # TensorBoard renders text as markdown: a code block keeps it verbatim.
                self.writer.add_text("sample", "```\n" + text.replace("```", "'''") + "\n```", step)
            self.writer.flush()

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


@dataclass(frozen=True)
class TensorBoardRequest:
    """`--tensorboard DIR` for a run whose trainer is built elsewhere (DDP ranks).

    Spawned ranks receive it pickled, so the sampler must be a module-level
    function (pickled by reference), called as `sampler(trainer, chars)`.
    """

    log_dir: Path
    sampler: Callable[[object, int], str] | None = None
    sample_chars: int = 200

    def open(self, trainer: Callable[[], object]) -> TensorBoardLog:
        """The log for the trainer that `trainer()` returns once it exists."""
        sampler = self.sampler
        if sampler is None:
            return TensorBoardLog(self.log_dir)
        return TensorBoardLog(self.log_dir, sampler=lambda: sampler(trainer(), self.sample_chars))
