"""What a model in training writes now: the short sample the TUI, the CLI and TensorBoard show."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.decoding.generator import Generator
from engine.decoding.params import SamplingParams

if TYPE_CHECKING:  # pragma: no cover
    from engine.training.trainer import Trainer


def preview_text(trainer: Trainer, chars: int = 160, temperature: float = 0.8) -> str:
    """A sample from a copy of the latest weights, seeded by the step (repeatable)."""
    generator = Generator(
        trainer.snapshot(), trainer.corpus.vocab, trainer.corpus.unigram(), trainer.device
    )
    params = SamplingParams(temperature=temperature, length=chars, seed=trainer.step)
    return generator.generate([""], params)[0]
