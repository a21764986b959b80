"""A trainer's run state in a checkpoint: what `--resume` needs to continue exactly.

Exact means the resumed run takes the same steps as one that never stopped: the
weights, the optimizer's moments, every RNG (torch's, the batch sampler's), the
data position, a stateful run's carried hidden state, and where the learning
rate schedule stands (`schedule_progress`, the time-budget part of it, which a
new process cannot recompute from its own clock).

Restoring checks every tensor against the model it goes into before changing
anything, so a tampered `trainer.safetensors` is one line, not a crash at the
first optimizer step. A resume that cannot be exact (no trainer state, a corpus
whose text changed) says why and is refused unless forced.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from engine.errors import CheckpointError
from engine.runs.checkpoint import (
    TRAINER_FILE,
    load_checkpoint,
    optimizer_tensors,
    restore_optimizer,
    save_checkpoint,
)
from engine.wording import setting

if TYPE_CHECKING:  # pragma: no cover
    from engine.data.corpus import Corpus
    from engine.runs.checkpoint import Checkpoint

# The trainer is passed in, never imported (trainer.py imports this module).
Trainer = Any


def _state_tensors(state: object) -> list[torch.Tensor]:
    if state is None:
        return []
    return list(state) if isinstance(state, tuple) else [state]  # type: ignore[list-item]


def save_run(trainer: Trainer, tags: tuple[str, ...], extra: dict | None = None) -> Path:
    """Write a checkpoint of everything needed to continue exactly from here.

    The caller holds the trainer's state lock, so no step runs while this reads.
    """
    assert trainer.out_dir is not None
    tensors, groups = optimizer_tensors(trainer.optimizer)
    tensors["rng.cpu"] = torch.get_rng_state()
    tensors["rng.data"] = trainer.batches.generator_state()
    if trainer.device.type == "cuda":
        tensors["rng.cuda.0"] = torch.cuda.get_rng_state(trainer.device)
    for i, tensor in enumerate(_state_tensors(trainer.carry)):
        tensors[f"carry.{i}"] = tensor
    corpus = trainer.corpus
    meta = {
        "step": trainer.step,
        "tokens": trainer.tokens,
        "world_size": trainer.world_size,
        "train": asdict(trainer.config),
        "history": trainer.history,
        "best_val_loss": trainer.best_val_loss,
        "train_seconds": trainer.train_seconds,
        "schedule_progress": trainer.schedule_progress(),
        "optimizer_groups": groups,
        "data": trainer.batches.state_dict(),
        "corpus": {
            "name": corpus.name,
            "files": [str(p.resolve()) for p in corpus.files[:1]] if len(corpus.files) == 1 else [],
            "content_key": corpus.content_key,
            "chars": int(getattr(corpus, "text_chars", 0) or len(corpus)),
        },
        "char_counts": corpus.counts.tolist(),
        "labels": list(corpus.labels) if trainer.train_segments is not None else [],
        **(extra or {}),
    }
    return save_checkpoint(
        trainer.out_dir,
        model=trainer.model,
        vocab=corpus.vocab,
        meta=meta,
        trainer_tensors=tensors,
        tags=tags,
    )


def inexact_reasons(resumed: Checkpoint, corpus: Corpus) -> list[str]:
    """Why resuming `resumed` on `corpus` would not continue the run exactly (empty: it would)."""
    reasons = []
    if not resumed.trainer_tensors:
        reasons.append(f"{TRAINER_FILE} is missing, so the optimizer and RNG states start fresh")
    saved_key = (resumed.meta.get("corpus") or {}).get("content_key")
    if saved_key and saved_key != corpus.content_key:
        reasons.append("the corpus text changed since the checkpoint was saved")
    return reasons


def load_resumable(
    run_dir: Path, device: torch.device, corpus: Corpus, *, force: bool
) -> tuple[Checkpoint, list[str]]:
    """The run's `last` checkpoint with its trainer state, checked against `corpus`.

    Returns it with the reasons it cannot continue exactly (only when `force`;
    otherwise those reasons are a CheckpointError).
    """
    try:
        resumed = load_checkpoint(run_dir, device, prefer="last", with_trainer=True)
    except CheckpointError:
        if not any(run_dir.glob("step-*")) and not (run_dir / "last").exists():
            raise CheckpointError(f"nothing to resume in {run_dir}") from None
        raise
    if resumed.vocab != corpus.vocab:
        raise CheckpointError(
            f"{run_dir}: the checkpoint was trained on another vocabulary than this "
            f"corpus ({resumed.vocab.difference(corpus.vocab)})"
        )
    reasons = inexact_reasons(resumed, corpus)
    if reasons and not force:
        raise CheckpointError(
            f"{run_dir}: resuming would not be exact ({'; '.join(reasons)}): "
            f"{setting('force')} continues anyway"
        )
    return resumed, reasons


def _check_shapes(trainer: Trainer, tensors: dict[str, torch.Tensor]) -> None:
    """Every trainer tensor fits the model it is restored into, or one line says which does not."""
    params = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    for name, tensor in tensors.items():
        if not name.startswith("optim."):
            continue
        parts = name.split(".", 2)
        if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(params):
            raise CheckpointError(f"{TRAINER_FILE}: {name} belongs to no parameter of the model")
        key, param = parts[2], params[int(parts[1])]
        if key in ("exp_avg", "exp_avg_sq") and tensor.shape != param.shape:
            raise CheckpointError(
                f"{TRAINER_FILE}: {name} has shape {tuple(tensor.shape)}, "
                f"the model's parameter {tuple(param.shape)}"
            )
        if key == "step" and tensor.numel() != 1:
            raise CheckpointError(f"{TRAINER_FILE}: {name} is not one number")
    if "rng.cpu" in tensors:
        expected = torch.get_rng_state()
        got = tensors["rng.cpu"]
        if got.dtype != expected.dtype or got.shape != expected.shape:
            raise CheckpointError(
                f"{TRAINER_FILE}: rng.cpu holds {got.numel()} values, a CPU RNG state {expected.numel()}"
            )
    data_rng = tensors.get("rng.data")
    if data_rng is not None and (data_rng.dtype != torch.uint8 or data_rng.dim() != 1):
        raise CheckpointError(f"{TRAINER_FILE}: rng.data is not an RNG state")
    config = trainer.model_config
    for i in range(8):
        carry = tensors.get(f"carry.{i}")
        if carry is None:
            continue
        layers = getattr(config, "num_layers", None)
        hidden = getattr(config, "hidden_size", None)
        if carry.dim() != 3 or (layers, hidden) != (carry.shape[0], carry.shape[2]):
            raise CheckpointError(
                f"{TRAINER_FILE}: carry.{i} has shape {tuple(carry.shape)}, "
                f"not (layers {layers}, rows, hidden {hidden})"
            )


def restore_run(trainer: Trainer, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Put the trainer where the checkpoint left off (meta and tensors already validated)."""
    _check_shapes(trainer, tensors)
    try:
        if tensors:
            restore_optimizer(trainer.optimizer, tensors, meta.get("optimizer_groups", []))
    except (RuntimeError, ValueError, KeyError, IndexError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{TRAINER_FILE}: the optimizer state does not fit ({first})"
        ) from None
    trainer.step = int(meta.get("step", 0))
    trainer.tokens = int(meta.get("tokens", 0))
    trainer.history = list(meta.get("history", []))
    trainer.best_val_loss = meta.get("best_val_loss")
    trainer.train_seconds = float(meta.get("train_seconds", 0.0))
    trainer.progress_offset = float(meta.get("schedule_progress", 0.0))
    if not tensors:
        return
    if "rng.cpu" in tensors:
        torch.set_rng_state(tensors["rng.cpu"])
    if "rng.data" in tensors:
        trainer.batches.restore(int(meta.get("data", {}).get("position", 0)), tensors["rng.data"])
    if trainer.device.type == "cuda" and "rng.cuda.0" in tensors:
        # This device's state only: a run saved on 8 GPUs resumes on 1 and back.
        torch.cuda.set_rng_state(tensors["rng.cuda.0"], trainer.device)
    carry = [tensors[f"carry.{i}"].to(trainer.device) for i in range(8) if f"carry.{i}" in tensors]
    same_world = int(meta.get("world_size", 1)) == trainer.world_size == 1
    if carry and same_world and carry[0].shape[1] == trainer.config.batch_size:
        trainer.carry = tuple(carry) if len(carry) > 1 else carry[0]
    elif carry:
        # Only rank 0's streams were saved, and their layout depends on the world size
        # (and the batch size): the streams start a fresh pass instead.
        trainer.batches.position = 0
