"""How a Trainer gets ready: its run directory, a resumed state, the data, the model, the
optimizer and the precision.

Functions with explicit arguments that `Trainer.__init__` calls in order and whose
results it keeps; apart from the loop because they change for other reasons (new
data kinds, checkpoint formats, devices) than the training step does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.config.train import TrainConfig
from engine.data.corpus import Corpus
from engine.data.items import item_window_starts, require_newline
from engine.errors import CheckpointError, ConfigError
from engine.machine.threads import ThreadGovernor
from engine.models import CharLM, ModelConfig, build_model, check_fits, config_from_dict
from engine.runs.checkpoint import Checkpoint
from engine.runs.run_dir import RunClaim, check_room, claim_run_dir
from engine.training.batches import BatchSource
from engine.training.eval_windows import WindowSampler
from engine.training.events import StatusEvent
from engine.training.run_state import load_resumable

if TYPE_CHECKING:  # precision.py is imported when a run chooses, not before
    from engine.machine.precision import PrecisionChoice


@dataclass
class DataSplit:
    """The train and held-out ids; a conditional run's label spans (start, end, label) too."""

    train_ids: np.ndarray
    val_ids: np.ndarray
    train_segments: np.ndarray | None = None
    val_segments: np.ndarray | None = None


def claim_for_run(
    out_dir: Path | None, *, is_main: bool, resume: bool, force: bool
) -> RunClaim | None:
    """Claim the run directory (one writer at a time) before any work is done."""
    if resume and out_dir is None:
        raise ConfigError("--resume needs --out (the run directory to continue)")
    if out_dir is None or not is_main:
        return None
    if resume and not out_dir.is_dir():
        raise CheckpointError(f"nothing to resume in {out_dir}")
    return claim_run_dir(out_dir, resume=resume, force=force)


def resumable_checkpoint(
    out_dir: Path | None,
    device: torch.device,
    corpus: Corpus,
    config: TrainConfig,
    *,
    force: bool,
    emit: Callable[[object], None],
) -> Checkpoint:
    """The checkpoint to continue from, checked against this corpus."""
    assert out_dir is not None
    resumed, reasons = load_resumable(out_dir, device, corpus, force=force)
    saved_labels = list(resumed.meta.get("labels") or [])
    if saved_labels and not config.conditional:
        raise CheckpointError(
            f"{out_dir}: a conditional run ({', '.join(saved_labels)}): "
            "resume it with --conditional"
        )
    if config.conditional and saved_labels != list(corpus.labels):
        raise CheckpointError(
            f"{out_dir}: the checkpoint was trained on other labels "
            f"({', '.join(saved_labels) or 'none'}) than this corpus's"
        )
    if reasons:
        emit(StatusEvent("starting", f"resuming inexactly: {'; '.join(reasons)}"))
    return resumed


def split_data(corpus: Corpus, config: TrainConfig, *, rank: int, notes: list[str]) -> DataSplit:
    """The train/validation split (kept per label for a conditional run)."""
    corpus.require_length(config.seq_len, config.val_fraction)
    if not config.conditional:
        return DataSplit(*corpus.split(config.val_fraction))
    from engine.data.labels import require_label_length

    if corpus.segments is None:
        raise ConfigError(
            f"--conditional needs a labelled corpus ('{corpus.name}' has no labels): "
            "a directory with one entry per label, or label<TAB>text lines"
        )
    require_label_length(corpus, config.seq_len, config.val_fraction)
    train, val = corpus.label_split(config.val_fraction)
    if rank == 0:
        from engine.data.label_balance import balance_note

        spans = train.segments[:, 1] - train.segments[:, 0] - config.seq_len
        windows = np.maximum(spans, 0)
        sizes = np.bincount(train.segments[:, 2], weights=windows, minlength=len(corpus.labels))
        notes.append(balance_note(corpus.labels, sizes, config.label_balance))
    return DataSplit(train.ids, val.ids, train.segments, val.segments)


def make_batches(
    data: DataSplit,
    corpus: Corpus,
    config: TrainConfig,
    device: torch.device,
    *,
    rank: int,
    world_size: int,
) -> BatchSource:
    """The batch source over the train split (this rank's share of it)."""
    return BatchSource(
        data.train_ids,
        config,
        device,
        config.seed * 1000,
        rank=rank,
        world_size=world_size,
        vocab_size=len(corpus.vocab),
        item_starts=_item_starts(data.train_ids, corpus, config),
        segments=data.train_segments,
        label_dropout=config.label_dropout,
    )


def make_eval_windows(
    data: DataSplit, config: TrainConfig, device: torch.device, model: CharLM
) -> WindowSampler:
    """The fixed held-out windows a periodic evaluation scores: a window of `seq_len`
    scored characters, after as many unscored ones again as the model's context holds
    (a recurrent model's state carries any number; see engine/training/eval_windows.py)."""
    val_ids = data.val_ids
    window = min(config.seq_len, len(val_ids) - 1)
    room = window if model.max_context is None else max(0, model.max_context - window)
    return WindowSampler(
        val_ids,
        config.eval_chars,
        window,
        config.seed + 7,
        device,
        segments=data.val_segments,
        context=min(window, room),
    )


def _item_starts(train_ids: np.ndarray, corpus: Corpus, config: TrainConfig) -> np.ndarray | None:
    """With --items: the newlines training windows start at (see engine.data.items)."""
    if not config.items:
        return None
    require_newline(corpus.vocab.chars, corpus.name)
    newline = corpus.vocab.index["\n"]
    return item_window_starts(train_ids, newline, config.seq_len)


@dataclass
class ModelSetup:
    """What build_run_model needs besides the model config (gathered, not recomputed)."""

    config: TrainConfig
    corpus: Corpus
    data: DataSplit
    device: torch.device
    rank: int
    world_size: int
    claim: RunClaim | None
    deadline: float | None
    threads: ThreadGovernor
    notes: list[str]  # set-up notes said at the start; this appends to them


def build_run_model(
    model_config: ModelConfig | None, resumed: Checkpoint | None, setup: ModelSetup
) -> tuple[CharLM, ModelConfig, object]:
    """Build the model (the checkpoint's config and weights when resuming).

    Returns (model, its config, the fitted width choice or None).
    """
    config, corpus = setup.config, setup.corpus
    if resumed is not None:
        model_config = config_from_dict(resumed.meta["model"])
    if model_config is None:
        raise ConfigError("a model configuration is required")
    model_config.vocab_size = len(corpus.vocab)
    if setup.data.train_segments is not None:
        if model_config.num_labels not in (0, len(corpus.labels)):
            raise CheckpointError("the checkpoint was trained on another number of labels")
        model_config.num_labels = len(corpus.labels)
    block_size = getattr(model_config, "block_size", None)
    if model_config.model_type == "transformer" and config.seq_len > block_size:
        raise ConfigError(
            f"seq-len {config.seq_len} exceeds the transformer's block size {block_size}"
        )
    short_window = model_config.model_type == "transformer" and config.seq_len < block_size
    if short_window and resumed is None:  # a resumed run keeps the context it has
        # Positions past the training window would never be trained, yet decoding and
        # the whole-split evaluation read up to block_size of context: the model's
        # context is the window it learns on.
        model_config.block_size = config.seq_len
        setup.notes.append(
            f"transformer context set to the training window: block size "
            f"{config.seq_len} (was {block_size}; longer contexts would never be trained)"
        )
    if config.batching == "stateful" and model_config.model_type == "transformer":
        raise ConfigError("stateful batching is for recurrent models; use random")
    width_choice = None
    if resumed is None and config.fit_width:
        width_choice = _fit_width(model_config, setup)
    parameters = check_fits(model_config)  # before allocating anything
    if setup.claim is not None:
        # weights + two Adam moments, written beside the previous checkpoint
        check_room(setup.claim.run_dir, parameters * 4 * 3)
    # Every rank builds the same initial weights (DDP also broadcasts rank 0's); the
    # randomness after that (dropout) differs per rank.
    torch.manual_seed(config.seed)
    model: CharLM = build_model(model_config).to(setup.device)
    if setup.rank:
        torch.manual_seed(config.seed + setup.rank)
    if resumed is not None:
        model.load_state_dict(resumed.model.state_dict())
    return model, model_config, width_choice


def _fit_width(model_config: ModelConfig, setup: ModelSetup) -> object:
    """Narrow a budgeted recurrent run to what the budget can train here and what the
    corpus can teach it, and (with `fit_data`) raise its dropout and weight decay with
    the epochs it will read (engine/config/sizing.py). Single-process CPU runs only:
    DDP ranks must agree on the shape, and a GPU trains the preset's width in any
    budget worth having. Returns the width choice, or None where it does not apply."""
    from engine.config.sizing import (
        TRAIN_SHARE,
        chars_by_steps,
        fit_to_data,
        fit_width,
        measure_training_rate,
    )
    from engine.machine.precision import CpuFacts
    from engine.models.recurrent import RecurrentConfig

    cfg, device = setup.config, setup.device
    solo_cpu = setup.world_size == 1 and device.type == "cpu"
    if not (solo_cpu and isinstance(model_config, RecurrentConfig) and setup.deadline):
        return None
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and CpuFacts.here().bf16 is not None)
    # On a busy machine, probe on the cores training will start on: threads beyond
    # the idle cores would make every width look slow, and the probe itself long.
    setup.threads.start()
    seconds = max(setup.deadline - time.monotonic(), 0.0) * TRAIN_SHARE
    preset_width = model_config.hidden_size
    train_chars = len(setup.data.train_ids)
    choice = fit_width(
        model_config,
        seconds,
        lambda shaped: measure_training_rate(shaped, cfg.batch_size, device, bf16),
        train_chars if cfg.fit_data else None,
    )
    model_config.hidden_size = choice.width
    setup.notes.append(choice.note(preset_width))
    if cfg.fit_data:
        rate, estimated = choice.rate(device.type)
        data = fit_to_data(train_chars, seconds, rate, chars_by_steps(cfg), estimated=estimated)
        setup.notes.append(data.apply(model_config, cfg))
    return choice


def make_optimizer(
    model: torch.nn.Module, config: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW, with weight decay on the matrices only."""
    decay, no_decay = [], []
    for param in model.parameters():
        (decay if param.dim() >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    betas = (0.9, config.beta2)
    if device.type == "cuda":
        return torch.optim.AdamW(groups, lr=config.lr, betas=betas, fused=True)
    # torch.optim imports torch._dynamo (seconds of a time budget); this one does not.
    from engine.training.optim import AdamW

    return AdamW(groups, lr=config.lr, betas=betas)  # type: ignore[return-value]


def choose_run_precision(
    config: TrainConfig,
    device: torch.device,
    model: CharLM,
    model_config: ModelConfig,
    vocab_size: int,
    world_size: int,
) -> PrecisionChoice:
    """fp32 or bf16 autocast, by measurement where the CPU could go either way."""
    from engine.machine.precision import choose_precision, probe_step_seconds

    shape = {"model": model_config.as_dict(), "batch": [config.batch_size, config.seq_len]}
    return choose_precision(
        config.precision,
        device,
        shape=shape,
        # Under DDP the ranks must agree, so only a cached verdict is used there.
        probe=None
        if world_size > 1
        else lambda: probe_step_seconds(
            model, config.batch_size, config.seq_len, vocab_size, device
        ),
    )


def training_module(
    model: torch.nn.Module, device: torch.device, world_size: int
) -> torch.nn.Module:
    """What a training step calls: the model, wrapped in DDP when there are several ranks."""
    if world_size > 1:
        from engine.machine.ddp import wrap_ddp

        return wrap_ddp(model, device)
    return model


def compile_or_eager(
    eager: torch.nn.Module,
    config: TrainConfig,
    fall_back: Callable[[BaseException], torch.nn.Module],
) -> torch.nn.Module:
    """torch.compile's module when `compile` is on; `fall_back(error)`'s where it fails."""
    if not config.compile:
        return eager
    try:
        return torch.compile(eager)  # type: ignore[return-value]
    except Exception as exc:
        return fall_back(exc)


def compile_failed(
    exc: BaseException, compiled: torch.nn.Module, eager: torch.nn.Module, *, compiled_ok: bool
) -> bool:
    """Did this exception come from torch.compile, which compiles lazily at first call?

    Anything raised by a compiled step before one has succeeded counts (a missing
    C compiler, an unsupported op), and later only dynamo / inductor errors (a
    recompilation for new shapes).
    """
    if compiled is eager:
        return False
    if not compiled_ok:
        return True
    return type(exc).__module__.startswith(("torch._dynamo", "torch._inductor"))
