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
in 300 s) and the Xeon's 5.3 at which it won. On the AMX Xeon in bf16 it reads
low instead: 43k chars/s for 512 wide where training then ran at ~61k (a process's
first seconds run slower there; before engine/machine/allocator.py, 34-36k), which
errs towards the narrower width and fewer epochs.

The corpus counts too (`fit_to_data`, a pure function): the characters a run
will read divided by its training split's length is the number of epochs it
makes. A few epochs (tinyshakespeare's 1-6 in 120 s) cannot memorise the text
and get no change; from FEW_EPOCHS on (a 200 KB names list reads 15-30 epochs
in 120 s) the model would learn the training split by heart, so the width is
capped and dropout and weight decay raised, more so from MANY_EPOCHS on, where a
recurrent model's hidden-to-hidden weights are dropped too (weight drop). In
`fit_width` a candidate whose own epochs put it over its tier's cap is passed
over like one the budget cannot train, unless the corpus is large for it (no more
parameters than PARAMETERS_PER_TRAIN_CHAR per training character): the floors on
dropout and weight decay still apply, but the width stays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from engine.config.train import TrainConfig
from engine.machine.precision import probe_step_seconds
from engine.models import build_model
from engine.models.base import ModelConfig
from engine.models.recurrent import RecurrentConfig

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

# Epochs of the training split from which a run is regularised, and from which more so
# (see the docstring): tinyshakespeare reads 1-6 in 120 s on the machines measured.
FEW_EPOCHS = 8.0
# 16, not 24: the width probe's rate can read a fifth below training's, and
# tinyshakespeare in 600 s (27 epochs read, ~22 estimated) scored 1.4456 with the
# lighter tier's dropout 0.1 against 1.4183-1.4245 with 0.2 (AMX Xeon, quiet).
MANY_EPOCHS = 16.0
# Mild on purpose until a quiet machine measures them: on a busy 2-core machine, 55 s on
# 72k chars of identifiers (~30 epochs, 256 wide) closed the train/val gap with dropout 0.3
# (0.44 -> 0.02 nats) but left val higher (2.03 against 1.95) after fewer steps.
# (width cap, dropout, weight decay, weight drop: all floors) from FEW_EPOCHS, and from
# MANY_EPOCHS. Weight drop (engine/models/weight_drop.py: recurrent models only) at 0.25
# took the sample verse (65k chars, 120 s, 256 wide, ~140-230 epochs) from 1.4248 to
# 1.3804 and left tinyshakespeare in 600 s (~26 epochs) as it was (1.4218 against 1.4227),
# while 0.4 there underfit (1.4652); AMX Xeon, load 0.2-1.6 before each run.
SOME_REGULARISATION = (384, 0.1, 0.1, 0.0)
STRONG_REGULARISATION = (256, 0.2, 0.1, 0.25)
# A width over its tier's cap stays when the training split has about as many characters
# as it has parameters: the cap is for small corpora. tinyshakespeare (1.0M training
# chars) in 600 s on the AMX Xeon reads ~30 epochs, yet 512 wide (1.22M parameters) with
# the strong tier's dropout and decay reached 1.4245 against 1.4558 for the capped 256
# (bench/train_quality.py --budget 600, quiet machine); a 200 KB names list stays capped.
PARAMETERS_PER_TRAIN_CHAR = 1.25
# Where no rate was measured: training chars/s is about this over the parameter count
# (the AVX2 EPYC in fp32: 10.7k chars/s for 1.2M parameters, 28.8k for 0.33M; an
# estimate, said as one wherever it is used).
RATE_TIMES_PARAMETERS = {"cpu": 1.0e10, "mps": 5.0e10, "cuda": 5.0e11}


@dataclass(frozen=True)
class DataFit:
    """What the epochs a run will read of its corpus ask for: a width cap, dropout, weight
    decay and weight drop floors (none below FEW_EPOCHS), and the line that says why."""

    epochs: float | None  # None: how many is unknown (no budget bound, no step bound)
    width_cap: int | None
    dropout: float
    weight_decay: float
    train_chars: int
    estimated: bool = False  # the rate behind `epochs` was estimated, not measured
    weight_drop: float = 0.0

    @property
    def regularised(self) -> bool:
        return self.width_cap is not None

    def apply(self, model_config: ModelConfig, train_config: TrainConfig) -> str:
        """Raise the run's regularisation to this fit's floors (a model without weight drop,
        the Transformer, keeps none; a setting the user asked for stays as asked) and
        return the line that says what it trains with. The one place both the request's
        resolution and the trainer's start apply a fit."""
        asked = set(train_config.asked_regularisation)
        if "dropout" not in asked:
            model_config.dropout = max(model_config.dropout, self.dropout)
        if "weight_decay" not in asked:
            train_config.weight_decay = max(train_config.weight_decay, self.weight_decay)
        weight_drop = getattr(model_config, "weight_drop", None)
        if weight_drop is not None and "weight_drop" not in asked:
            weight_drop = max(weight_drop, self.weight_drop)
            model_config.weight_drop = weight_drop  # type: ignore[attr-defined]
        return self.reason(
            model_config.dropout, train_config.weight_decay, weight_drop or 0.0, asked
        )

    def reason(
        self,
        dropout: float,
        weight_decay: float,
        weight_drop: float = 0.0,
        asked: set[str] | frozenset[str] = frozenset(),
    ) -> str:
        """The line for a run that trains with `dropout`, `weight_decay` and `weight_drop`
        after this fit; the `asked` ones are marked as the user's."""
        if self.epochs is None:
            return "regularisation: the preset's (how many epochs the run reads is unknown)"
        about = "an estimated " if self.estimated else ""
        read = f"{about}{self.epochs:.1f} epochs of {_chars(self.train_chars)} training chars"
        if not self.regularised:
            whose = "as set" if asked else "the preset's"
            return f"regularisation: {whose} ({read}: too few to learn it by heart)"
        values = {"dropout": dropout, "weight_decay": weight_decay, "weight_drop": weight_drop}
        parts = [
            f"{name.replace('_', ' ')} {value:g}" + (" (asked)" if name in asked else "")
            for name, value in values.items()
            if name != "weight_drop" or value or name in asked
        ]
        return f"{', '.join(parts)} for {read} (a small corpus read many times is learnt by heart)"


def _chars(count: float) -> str:
    if count >= 1e6:
        return f"{count / 1e6:.1f}M"
    return f"{count / 1e3:.0f}k" if count >= 1e3 else f"{count:.0f}"


def estimated_rate(parameters: int, device_type: str = "cpu") -> float:
    """Training chars/s of a model of `parameters` where none was measured (a rough guess)."""
    return RATE_TIMES_PARAMETERS.get(device_type, RATE_TIMES_PARAMETERS["cpu"]) / max(parameters, 1)


def chars_by_steps(config: TrainConfig) -> int | None:
    """The characters a run's step bound reads (max_steps x its batch), None without one:
    exact, where a budget's reading depends on speed."""
    steps = config.max_steps
    return steps * config.batch_size * config.seq_len if steps is not None else None


def fit_to_data(
    train_chars: int,
    seconds: float | None,
    rate: float | None,
    step_chars: int | None = None,
    *,
    estimated: bool = False,
) -> DataFit:
    """The regularisation `train_chars` of training text asks for when a run reads it for
    `seconds` at `rate` chars/s, or `step_chars` (max steps x batch), whichever is less.

    Pure: the same corpus size, budget and throughput always give the same answer.
    """
    by_steps = float(step_chars) if step_chars is not None else None
    by_time = max(seconds, 0.0) * max(rate, 0.0) if seconds is not None and rate else None
    if by_time is None and by_steps is None:
        return DataFit(None, None, 0.0, 0.0, train_chars)
    if by_time is None or (by_steps is not None and by_steps <= by_time):
        read, estimated = by_steps, False  # the step bound is exact
    else:
        read = by_time
    epochs = read / max(train_chars, 1)
    if epochs < FEW_EPOCHS:
        return DataFit(epochs, None, 0.0, 0.0, train_chars, estimated)
    cap, dropout, decay, weight_drop = (
        SOME_REGULARISATION if epochs < MANY_EPOCHS else STRONG_REGULARISATION
    )
    return DataFit(epochs, cap, dropout, decay, train_chars, estimated, weight_drop)


@dataclass(frozen=True)
class WidthChoice:
    width: int
    seconds: float  # the training time the choice was made for
    rates: dict[int, float]  # measured training chars/s per width probed
    parameters: dict[int, int]
    # Widths the budget could train but the corpus could not (epochs they would read).
    too_many_epochs: dict[int, float] = field(default_factory=dict)

    def rate(self, device_type: str = "cpu") -> tuple[float, bool]:
        """The chosen width's chars/s and whether it is estimated: measured, else scaled by
        parameters from the nearest width measured, else `estimated_rate`."""
        if self.width in self.rates:
            return self.rates[self.width], False
        parameters = self.parameters.get(self.width)
        if self.rates and parameters:
            nearest = min(self.rates)
            return self.rates[nearest] * self.parameters[nearest] / parameters, True
        return estimated_rate(parameters or 1, device_type), True

    def note(self, preset_width: int) -> str:
        """One line for the run's start: the width, and the measurements behind it."""
        if self.too_many_epochs:
            wider = max(self.too_many_epochs)
            return (
                f"width {self.width} for this corpus and budget ({wider} wide: "
                f"{self.too_many_epochs[wider]:.0f} epochs of the training split, "
                "too many for its size)"
            )
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
    config: RecurrentConfig,
    seconds: float,
    measure_rate: Callable[[RecurrentConfig], float],
    train_chars: int | None = None,
) -> WidthChoice:
    """The widest candidate whose `seconds` of training at its measured rate read at least
    CHARS_PER_PARAMETER characters per parameter, and (given `train_chars`) no more epochs
    of the corpus than its width allows (`fit_to_data`); the narrowest if none does. The
    narrowest is never probed (it is the answer either way), and a budget under
    MIN_PROBE_S probes nothing: no CPU reads millions of characters in it, and the probe
    would take a share of it."""
    rates: dict[int, float] = {}
    parameters: dict[int, int] = {}
    too_many: dict[int, float] = {}
    widths = candidate_widths(config.hidden_size)
    parameters[widths[-1]] = build_model(replace(config, hidden_size=widths[-1])).num_parameters()
    if seconds >= MIN_PROBE_S:
        for width in widths[:-1]:
            shaped = replace(config, hidden_size=width)
            parameters[width] = build_model(shaped).num_parameters()
            rates[width] = measure_rate(shaped)
            if rates[width] * seconds < CHARS_PER_PARAMETER * parameters[width]:
                continue
            if train_chars is not None:
                data = fit_to_data(train_chars, seconds, rates[width])
                capped = data.width_cap is not None and width > data.width_cap
                if capped and parameters[width] > PARAMETERS_PER_TRAIN_CHAR * train_chars:
                    too_many[width] = data.epochs or 0.0
                    continue
            return WidthChoice(width, seconds, rates, parameters, too_many)
    return WidthChoice(widths[-1], seconds, rates, parameters, too_many)


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
