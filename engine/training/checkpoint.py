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
next process that claims the run directory (engine/training/run_dir.py).

Loading checks `state.json` against its schema (engine/training/state_schema.py)
before building the model, and refuses weights that are not finite, so `last`
and `best` only ever name checkpoints that can be used.
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
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from engine.data.corpus import Vocab
from engine.data.words import tokenizer_meta, vocab_from_state
from engine.errors import CheckpointError, UserError, first_line
from engine.models import CharLM, build_model, config_from_dict
from engine.training.state_schema import check_state

FORMAT_NAME = "charlm-tui-checkpoint"
FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
TRAINER_FILE = "trainer.safetensors"
STATE_FILE = "state.json"
TAGS = ("last", "best")


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


def _fsync_path(path: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync directories; the rename still orders writes
    finally:
        os.close(fd)


def _swap_symlink(run_dir: Path, tag: str, target_name: str) -> None:
    temp = run_dir / f".{tag}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    os.symlink(target_name, temp)
    try:
        os.replace(temp, run_dir / tag)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _referenced(run_dir: Path) -> set[str]:
    names = set()
    for tag in TAGS:
        link = run_dir / tag
        if link.is_symlink():
            names.add(os.readlink(link))
    return names


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def temp_owner(name: str) -> int | None:
    """The pid written into a temporary name (`.tmp-<pid>-...`, `.last.<pid>.<id>`)."""
    if name.startswith(".tmp-"):
        field = name[len(".tmp-") :].split("-", 1)[0]
    else:
        parts = name.split(".")
        field = parts[2] if len(parts) > 3 else ""
    return int(field) if field.isdigit() else None


def remove_stale_temps(run_dir: Path) -> None:
    """Remove temporaries whose writer is dead (a crash mid-save); never a live one's."""
    for entry in run_dir.iterdir():
        is_temp = entry.name.startswith((".tmp-", ".last.", ".best."))
        if not is_temp:
            continue
        owner = temp_owner(entry.name)
        if owner is None or owner == os.getpid() or pid_alive(owner):
            continue
        if entry.is_symlink() or entry.is_file():
            entry.unlink(missing_ok=True)
        elif entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def _prune(run_dir: Path) -> None:
    """Remove checkpoint dirs no tag points at, and temporaries of writers that died."""
    remove_stale_temps(run_dir)
    keep = _referenced(run_dir)
    for entry in run_dir.iterdir():
        if entry.is_symlink() or not entry.name.startswith("step-"):
            continue
        if entry.name not in keep and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


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
        _fsync_path(run_dir)
        for tag in tags:
            _swap_symlink(run_dir, tag, name)
        _fsync_path(run_dir)
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
    (temp / STATE_FILE).write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    for file in temp.iterdir():
        _fsync_path(file)
    _fsync_path(temp)


def _unwrap(model: torch.nn.Module) -> CharLM:
    """The plain model under torch.compile / DistributedDataParallel wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if inner is None:
            return model  # type: ignore[return-value]
        model = inner


def resolve_checkpoint_dir(path: str | Path, prefer: str = "best") -> Path:
    """A checkpoint directory from a run directory (its `best` or `last`) or itself."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the path does not exist")
    if path.is_file():
        path = path.parent
    if (path / STATE_FILE).exists():
        return path
    order = (prefer, *(t for t in TAGS if t != prefer))
    for tag in order:
        link = path / tag
        if link.exists() and (link / STATE_FILE).exists():
            return link.resolve()
    complete = sorted(p for p in path.glob("step-*") if (p / STATE_FILE).exists())
    if complete:
        return complete[-1]
    raise CheckpointError(f"no checkpoint in {path} (expected {STATE_FILE}, or a last/best link)")


def read_state(directory: Path) -> dict:
    """state.json, validated: format name and version are checked before anything else."""
    try:
        state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{directory}: not a checkpoint ({STATE_FILE} is missing)") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{directory / STATE_FILE}: damaged (not valid JSON)") from None
    except RecursionError:
        raise CheckpointError(f"{directory / STATE_FILE}: damaged (nested too deeply)") from None
    except OSError as exc:  # a directory in its place, no permission, an I/O error
        raise CheckpointError(f"{directory / STATE_FILE}: unreadable ({exc.strerror})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{directory}: not a charlm-tui checkpoint")
    version = state.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(
            f"{directory}: damaged metadata (no valid format version: {version!r})"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{directory}: checkpoint format {version} is newer than this charlm-tui "
            f"understands ({FORMAT_VERSION}); upgrade charlm-tui"
        )
    return state


def load_checkpoint(
    path: str | Path,
    device: str | torch.device = "cpu",
    *,
    prefer: str = "best",
    with_trainer: bool = False,
) -> Checkpoint:
    """Load a checkpoint (or a run directory's `prefer` one) onto `device`."""
    directory = resolve_checkpoint_dir(path, prefer)
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
    try:
        missing, unexpected = load_model(model, str(directory / MODEL_FILE), strict=False)
    except FileNotFoundError:
        raise CheckpointError(f"{directory}: {MODEL_FILE} is missing") from None
    except (SafetensorError, RuntimeError, ValueError, OSError) as exc:
        first = first_line(exc, type(exc).__name__)
        raise CheckpointError(
            f"{directory / MODEL_FILE}: damaged or foreign weights ({first})"
        ) from None
    if missing or unexpected:
        raise CheckpointError(f"{directory / MODEL_FILE}: weights do not match the model config")
    bad = first_non_finite(model)
    if bad is not None:
        raise CheckpointError(
            f"{directory / MODEL_FILE}: weights are not finite ({bad}: NaN or inf)"
        )
    model.to(device).eval()
    tensors: dict[str, torch.Tensor] = {}
    if with_trainer and (directory / TRAINER_FILE).exists():
        try:
            tensors = load_file(str(directory / TRAINER_FILE))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{directory / TRAINER_FILE}: damaged ({exc})") from None
        bad = first_non_finite(tensors)
        if bad is not None:
            raise CheckpointError(f"{directory / TRAINER_FILE}: {bad} is not finite (NaN or inf)")
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
