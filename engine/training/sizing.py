"""A recurrent model's width sized to what its time budget can train on this machine.

In a fixed time, a wider model learns more per character but reads fewer of
them: which wins depends on the machine. On tinyshakespeare with 120 s on two
cores (bench/train_quality.py), the `cpu` preset's 1x512 LSTM reached
val 1.49 nats/char on an AMX Xeon (bf16, 54k chars/s: 6.4M characters read) but
1.93 on an AVX2-only EPYC (fp32, 11k chars/s: 1.3M characters), where a 1x256
LSTM (29k chars/s, 3.5M characters) reached 1.77 and a 1x384 one 1.86. The
characters read per parameter separate them: 5.3 for the Xeon's 512, 1.1, 2.9
and 10 for the EPYC's 512, 384 and 256.

So a budgeted run of the preset measures each candidate width's training speed
(a few forward/backward passes of the run's own batch rows over PROBE_SEQ
positions, in the precision it would use), widest first, and keeps the widest
whose budget reads at least CHARS_PER_PARAMETER characters per parameter, else
the narrowest (never probed itself). The probe costs about a second, once, and
runs with the random state saved and put back; a budget too short to matter
(MIN_PROBE_S) skips it. It reads 1.2-1.4x the speed training then reaches
(no optimizer step, shorter windows: 13k and 40k chars/s against 10.7k and 28.6k
for 512 and 256 wide on the EPYC), so the threshold of 4 on probe figures is about
3 on real ones, between the 2.6 at which 512 still lost (1.65 against 1.60 for 256
in 300 s) and the Xeon's 5.3 at which it won.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from engine.models import build_model
from engine.models.recurrent import RecurrentConfig
from engine.training.precision import probe_step_seconds

CANDIDATE_WIDTHS = (512, 384, 256)
# Characters read per parameter from which the wider model wins (see the docstring).
CHARS_PER_PARAMETER = 4.0
# The share of the time left at set-up that training gets (the final evaluation, the save
# and the exit take the rest: 120 s runs trained 112-116 s of the ~117 s left).
TRAIN_SHARE = 0.9
# Below this much training time no width is probed: the narrowest is taken.
MIN_PROBE_S = 20.0
PROBE_SEQ = 32  # positions per probe pass: the run's batch rows, a shorter window
PROBE_PASSES = 2  # timed passes per width and precision, after one untimed


@dataclass(frozen=True)
class WidthChoice:
    width: int
    seconds: float  # the training time the choice was made for
    rates: dict[int, float]  # measured training chars/s per width probed
    parameters: dict[int, int]

    def note(self, preset_width: int) -> str:
        """One line for the run's start: the width, and the measurements behind it."""
        if self.width == preset_width:
            rate = self.rates[self.width]
            read = f"{rate * self.seconds / 1e6:.1f}M chars"
            return (
                f"width {self.width} kept (probe {rate / 1000:.0f}k chars/s, {read} in the budget)"
            )
        wide = self.rates.get(preset_width)
        if not wide:
            return f"width {self.width}: a {self.seconds:.0f} s budget is too short for a wider one"
        chars = wide * self.seconds
        per = chars / self.parameters[preset_width]
        return (
            f"width {self.width} for this CPU and budget ({preset_width} wide: probe "
            f"{wide / 1000:.0f}k chars/s, {chars / 1e6:.1f}M chars, {per:.1f} per parameter)"
        )


def candidate_widths(preset_width: int) -> list[int]:
    """The preset's own width, then the narrower candidates, widest first."""
    return [preset_width, *(w for w in CANDIDATE_WIDTHS if w < preset_width)]


def fit_width(
    config: RecurrentConfig, seconds: float, measure_rate: Callable[[RecurrentConfig], float]
) -> WidthChoice:
    """The widest candidate whose `seconds` of training at its measured rate read at least
    CHARS_PER_PARAMETER characters per parameter; the narrowest if none does. The
    narrowest is never probed (it is the answer either way), and a budget under
    MIN_PROBE_S probes nothing: no CPU reads millions of characters in it, and the probe
    would take a share of it."""
    rates: dict[int, float] = {}
    parameters: dict[int, int] = {}
    widths = candidate_widths(config.hidden_size)
    if seconds >= MIN_PROBE_S:
        for width in widths[:-1]:
            shaped = replace(config, hidden_size=width)
            parameters[width] = build_model(shaped).num_parameters()
            rates[width] = measure_rate(shaped)
            if rates[width] * seconds >= CHARS_PER_PARAMETER * parameters[width]:
                return WidthChoice(width, seconds, rates, parameters)
    return WidthChoice(widths[-1], seconds, rates, parameters)


def measure_training_rate(
    config: RecurrentConfig, batch_size: int, device: torch.device, bf16: bool
) -> float:
    """Training chars/s of this shape: forward, loss and backward of `batch_size` rows of
    PROBE_SEQ positions, best of PROBE_PASSES after a warm-up (the precision probe's
    timing); with `bf16`, also under bf16 autocast, keeping the faster (the run chooses
    its precision the same way). The random state is saved and put back."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(config).to(device)
    fp32_s, bf16_s = probe_step_seconds(
        model, batch_size, PROBE_SEQ, config.vocab_size, device, steps=PROBE_PASSES, bf16=bf16
    )
    return batch_size * PROBE_SEQ / max(min(fp32_s, bf16_s), 1e-9)
