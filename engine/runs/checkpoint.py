"""Safe, atomic checkpoints.

A run directory holds checkpoint directories (`step-00000500-1a2b3c/`) and two
symlinks, `last` and `best`, that name them. A checkpoint directory holds
`model.safetensors` (weights), `trainer.safetensors` (optimizer moments, RNG
states, carried hidden state) and `state.json` (config, vocabulary, step, metric
history, format version). Nothing is ever pickled, so loading a crafted
checkpoint cannot run code.

Each checkpoint is written into a hidden temporary directory, every file
fsynced, then renamed into place, and only then are the symlinks swapped (a
rename too). Killing the process at any instant leaves the previous `last`
complete and loadable; a save that fails (a full disk) removes its own
temporaries and says so in one line. Temporary names carry the writer's pid:
a save only ever removes its own, and a crashed writer's are removed by the
next process that claims the run directory (engine/runs/run_dir.py).

Every file of a checkpoint is created with `O_EXCL | O_NOFOLLOW` inside the
save's own fresh temporary directory, so nothing planted can be written through.
The tags, temporaries and pruning are engine/runs/run_tags.py; reading
(bounded, non-blocking, dtypes checked) is engine/runs/checkpoint_read.py.

Loading checks `state.json` against its schema (engine/runs/state_schema.py)
before building the model, and refuses weights that are not finite, so `last`
and `best` only ever name checkpoints that can be used. A load that resolved a
tag and finds its checkpoint pruned under it (the directory is gone, never half
there) resolves the tag again.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import _remove_duplicate_names
from safetensors.torch import save as serialize

from engine.data.corpus import Vocab
from engine.data.words import tokenizer_meta, vocab_from_state
from engine.errors import CheckpointError, UserError
from engine.files import fsync_dir
from engine.models import CharLM, build_model, config_from_dict
from engine.runs.checkpoint_read import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MODEL_FILE,
    STATE_FILE,
    TRAINER_FILE,
    load_weights,
    read_state,
    read_trainer,
    resolve,
    resolve_checkpoint_dir,
)
from engine.runs.run_tags import (
    TAGS,
    pid_alive,
    prune,
    remove_stale_temps,
    swap_symlink,
    temp_owner,
)
from engine.runs.state_schema import check_state

# Re-exported: callers import these from here.
__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MODEL_FILE",
    "STATE_FILE",
    "TAGS",
    "TRAINER_FILE",
    "Checkpoint",
    "load_checkpoint",
    "pid_alive",
    "read_state",
    "remove_stale_temps",
    "resolve_checkpoint_dir",
    "save_checkpoint",
    "temp_owner",
]
# A load that finds its tag's checkpoint pruned under it resolves the tag again.
LOAD_ATTEMPTS = 5


@dataclass
class Checkpoint:
    """A loaded checkpoint: a ready model (eval mode), its vocabulary and metadata."""

    path: Path
    model: CharLM
    vocab: Vocab
    meta: dict
    trainer_tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))

    @property
    def train_config(self) -> dict:
        return dict(self.meta.get("train", {}))

    @property
    def history(self) -> list[dict]:
        return list(self.meta.get("history", []))

    @property
    def labels(self) -> tuple[str, ...]:
        """The label names of a conditional model, in condition-id order (id = index + 1);
        empty for an unconditional one (every checkpoint from before labels existed)."""
        return tuple(self.meta.get("labels") or ())

    @property
    def unigram(self) -> np.ndarray:
        counts = np.asarray(self.meta.get("char_counts") or np.ones(len(self.vocab)), dtype=float)
        return counts / counts.sum()


def _prune(run_dir: Path) -> None:
    """Remove checkpoint dirs no tag resolves to (engine/runs/run_tags.py)."""
    prune(run_dir)


def first_non_finite(tensors: dict[str, torch.Tensor] | torch.nn.Module) -> str | None:
    """The name of the first floating-point tensor holding NaN or inf, else None."""
    items = (
        tensors.state_dict().items() if isinstance(tensors, torch.nn.Module) else tensors.items()
    )
    for name, tensor in items:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def describe_os_error(path: Path, exc: OSError) -> str:
    """An OSError met while writing under `path`, as the one line a user can act on."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device holding {path}"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write to {path} ({exc.strerror})"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"cannot use {path} as a run directory: a file is in the way"
    return f"cannot write to {path} ({exc.strerror or type(exc).__name__})"


def _save_error(run_dir: Path, exc: OSError) -> CheckpointError:
    return CheckpointError(f"saving a checkpoint failed: {describe_os_error(run_dir, exc)}")


def save_checkpoint(
    run_dir: Path,
    *,
    model: CharLM,
    vocab: Vocab,
    meta: dict,
    trainer_tensors: dict[str, torch.Tensor] | None = None,
    tags: tuple[str, ...] = ("last",),
) -> Path:
    """Write one checkpoint atomically and point `tags` at it; returns its directory.

    Weights that are not finite are refused (a diverged model never becomes `last`);
    any OSError (a full disk) leaves no temporary behind and is one line.
    """
    run_dir = Path(run_dir)
    bad = first_non_finite(_unwrap(model))
    if bad is not None:
        raise CheckpointError(f"refusing to save a checkpoint whose weights are not finite ({bad})")
    step = int(meta.get("step", 0))
    name = f"step-{step:08d}-{uuid.uuid4().hex[:6]}"
    temp = run_dir / f".tmp-{os.getpid()}-{name}"
    final = run_dir / name
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        temp.mkdir()
        _write_files(temp, model, vocab, meta, trainer_tensors)
        os.replace(temp, final)
    except OSError as exc:
        shutil.rmtree(temp, ignore_errors=True)
        raise _save_error(run_dir, exc) from None
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    try:
        fsync_dir(run_dir)
        for tag in tags:
            swap_symlink(run_dir, tag, name)
        fsync_dir(run_dir)
    except OSError as exc:
        raise _save_error(run_dir, exc) from None
    finally:
        _prune(run_dir)  # a checkpoint no tag reached is removed here
    return final


def _write_files(
    temp: Path,
    model: CharLM,
    vocab: Vocab,
    meta: dict,
    trainer_tensors: dict[str, torch.Tensor] | None,
) -> None:
    state = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model": model.config.as_dict(),
        "vocab": list(vocab.chars),
        **({"tokenizer": tokenizer_meta(vocab)} if vocab.kind != "char" else {}),
        "saved_at": time.time(),
        **meta,
    }
    save_model(_unwrap(model), str(temp / MODEL_FILE))
    if trainer_tensors:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in trainer_tensors.items()}
        save_file(tensors, str(temp / TRAINER_FILE))
    _write_new(temp / STATE_FILE, json.dumps(state, ensure_ascii=False).encode("utf-8"))
    fsync_dir(temp)


def _write_new(path: Path, data: bytes) -> None:
    """Create `path` (never an existing file or link: O_EXCL, O_NOFOLLOW) and fsync it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def save_file(tensors: dict[str, torch.Tensor], filename: str) -> None:
    """safetensors' save_file, written by `_write_new`."""
    _write_new(Path(filename), serialize(tensors))


def save_model(model: torch.nn.Module, filename: str) -> None:
    """safetensors' save_model (tied weights stored once), written by `_write_new`."""
    state_dict = model.state_dict()
    metadata: dict[str, str] = {}
    for kept, removed in _remove_duplicate_names(state_dict).items():
        for name in removed:
            metadata[name] = kept
            del state_dict[name]
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    _write_new(Path(filename), serialize(tensors, metadata=metadata or None))


def _unwrap(model: torch.nn.Module) -> CharLM:
    """The plain model under torch.compile / DistributedDataParallel wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if inner is None:
            return model  # type: ignore[return-value]
        model = inner


def load_checkpoint(
    path: str | Path,
    device: str | torch.device = "cpu",
    *,
    prefer: str = "best",
    with_trainer: bool = False,
) -> Checkpoint:
    """Load a checkpoint (or a run directory's `prefer` one) onto `device`."""
    for attempt in range(LOAD_ATTEMPTS):
        directory, tagged = resolve(path, prefer)
        try:
            return _load_from(directory, device, with_trainer)
        except CheckpointError:
            # Pruned under us (renamed away whole): the tag names a newer one now.
            if not tagged or directory.is_dir() or attempt == LOAD_ATTEMPTS - 1:
                raise
            time.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _load_from(directory: Path, device: str | torch.device, with_trainer: bool) -> Checkpoint:
    state = read_state(directory)
    try:
        check_state(state)  # every field, before anything is built from them
        config = config_from_dict(state["model"])
        vocab = vocab_from_state(state["vocab"], state.get("tokenizer"))
    except (KeyError, TypeError, ValueError, UserError) as exc:
        raise CheckpointError(f"{directory}: damaged metadata ({exc})") from None
    labels = state.get("labels") or []
    if not isinstance(labels, list) or len(labels) != config.num_labels:
        raise CheckpointError(f"{directory}: damaged metadata (labels do not match the model)")
    model = build_model(config)
    load_weights(model, directory / MODEL_FILE)
    bad = first_non_finite(model)
    if bad is not None:
        raise CheckpointError(
            f"{directory / MODEL_FILE}: weights are not finite ({bad}: NaN or inf)"
        )
    tensors: dict[str, torch.Tensor] = {}
    if with_trainer:
        tensors = read_trainer(model, state, directory)
        bad = first_non_finite(tensors)
        if bad is not None:
            raise CheckpointError(f"{directory / TRAINER_FILE}: {bad} is not finite (NaN or inf)")
    model.to(device).eval()
    return Checkpoint(directory, model, vocab, state, tensors)


def optimizer_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """An optimizer's state as flat tensors plus JSON-able param groups (no pickle)."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{index}.{key}"] = tensor
    groups = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()}
        for group in state_dict["param_groups"]
    ]
    return tensors, groups


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        if not name.startswith("optim."):
            continue
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    current = optimizer.state_dict()["param_groups"]
    restored = []
    for saved, now in zip(groups, current, strict=True):
        group = dict(saved)
        group["params"] = now["params"]
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        restored.append(group)
    optimizer.load_state_dict({"state": state, "param_groups": restored})
