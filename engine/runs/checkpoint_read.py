"""Reading a checkpoint's files: bounded, non-blocking, and only what the run wrote.

Every file goes through engine/files.py: it must be a regular file (a FIFO, a
directory, a link to `/dev/zero` is one line, never a hang or an endless read)
of a size the model that state.json describes can have (a sparse 2 GB file is
refused, never read). The weights must hold exactly the tensors, shapes and
dtypes the run wrote (fp32 parameters; for the trainer state fp32 optimizer
moments and uint8 RNG states): a file of F16, I64, BOOL, U8 or C64 tensors with
the right shapes would load and generate garbage, so it is refused naming the
tensor and its dtype.

`resolve_checkpoint_dir` finds the checkpoint a run's tag names (the tag is
resolved, and must name a `step-*` directory inside the run, see
engine/runs/run_tags.py); `resolve` also says whether the answer came from a
tag, in which case a reader that finds the directory gone (pruned under it)
resolves again.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import _remove_duplicate_names
from safetensors.torch import load as load_safetensors

from engine.errors import CheckpointError, first_line
from engine.files import KIB, MAX_JSON_BYTES, MIB, parse_json, read_bytes, show_path, user_path
from engine.runs.run_tags import TAGS, tag_target

FORMAT_NAME = "charlm-tui-checkpoint"
FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
TRAINER_FILE = "trainer.safetensors"
STATE_FILE = "state.json"
# Beyond the tensors' bytes: the safetensors header (names, shapes, offsets).
HEADER_ALLOWANCE = 64 * KIB
HEADER_PER_TENSOR = 512
# The widest dtype a file of the right shapes could hold (F64, I64, C64): such a file
# is read and refused by its dtype, a larger one by its size.
WIDEST_DTYPE_BYTES = 8

DTYPE_CODES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.complex64: "C64",
}


def dtype_code(dtype: torch.dtype) -> str:
    return DTYPE_CODES.get(dtype, str(dtype).removeprefix("torch."))


def resolve(path: str | Path, prefer: str = "best") -> tuple[Path, bool]:
    """The checkpoint directory `path` names, and whether a tag (or link) chose it."""
    path = user_path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {show_path(path)}: the path does not exist")
    if path.is_file():
        path = path.parent
    if (path / STATE_FILE).exists() or os.path.lexists(path / STATE_FILE):
        return (path.resolve(), True) if path.is_symlink() else (path, False)
    order = (prefer, *(t for t in TAGS if t != prefer))
    for tag in order:
        link = path / tag
        if not link.is_symlink():
            continue
        name = tag_target(path, tag)
        if name is None:
            raise CheckpointError(
                f"{show_path(link)} does not name a checkpoint (step-*) inside the run"
            )
        if (path / name).is_dir():
            return path / name, True
    complete = sorted(p for p in path.glob("step-*") if (p / STATE_FILE).exists())
    if complete:
        return complete[-1], True
    raise CheckpointError(
        f"no checkpoint in {show_path(path)} (expected {STATE_FILE}, or a last/best link)"
    )


def resolve_checkpoint_dir(path: str | Path, prefer: str = "best") -> Path:
    """A checkpoint directory from a run directory (its `best` or `last`) or itself."""
    return resolve(path, prefer)[0]


def read_state(directory: Path) -> dict:
    """state.json, validated: format name and version are checked before anything else."""
    path = directory / STATE_FILE
    if not os.path.lexists(path):
        raise CheckpointError(f"{show_path(directory)}: not a checkpoint ({STATE_FILE} is missing)")
    try:
        data = read_bytes(path, MAX_JSON_BYTES, STATE_FILE, CheckpointError)
        state = parse_json(data, show_path(path), CheckpointError)
    except CheckpointError as exc:
        message = f"{exc} (damaged checkpoint)" if "JSON" in str(exc) else str(exc)
        raise CheckpointError(message) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{show_path(directory)}: not a charlm-tui checkpoint")
    version = state.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(
            f"{show_path(directory)}: damaged metadata (no valid format version: {version!r})"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{show_path(directory)}: checkpoint format {version} is newer than this "
            f"charlm-tui understands ({FORMAT_VERSION}); upgrade charlm-tui"
        )
    return state


def read_tensors(path: Path, max_bytes: int) -> dict[str, torch.Tensor]:
    """A safetensors file of at most `max_bytes`, read through the bounded reader."""
    data = read_bytes(path, max_bytes, path.name, CheckpointError)
    try:
        return load_safetensors(data)
    except (SafetensorError, RuntimeError, ValueError, TypeError) as exc:
        first = first_line(exc, type(exc).__name__)
        raise CheckpointError(f"{show_path(path)}: damaged or foreign weights ({first})") from None


def _bound(numel: int, count: int) -> int:
    return numel * WIDEST_DTYPE_BYTES + HEADER_ALLOWANCE + HEADER_PER_TENSOR * count


def _refuse_dtype(path: Path, name: str, got: torch.dtype, wrote: str) -> None:
    raise CheckpointError(
        f"{show_path(path)}: tensor {name} is {dtype_code(got)}, but the run wrote {wrote}: "
        "refusing weights of another dtype"
    )


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Read `path` into `model`: the model's tensors, shapes and dtypes, nothing else."""
    if not os.path.lexists(path):
        raise CheckpointError(f"{show_path(path.parent)}: {path.name} is missing")
    expected = model.state_dict()
    tensors = read_tensors(path, _bound(sum(t.numel() for t in expected.values()), len(expected)))
    for name, tensor in tensors.items():
        want = expected.get(name)
        if want is None:
            continue
        if tensor.dtype != want.dtype:
            _refuse_dtype(path, name, tensor.dtype, dtype_code(want.dtype))
        if tensor.shape != want.shape:
            raise CheckpointError(f"{show_path(path)}: weights do not match the model config")
    # Tied weights are stored once (safetensors' save_model): as its load_model does.
    shared = _remove_duplicate_names(expected, preferred_names=tensors.keys())
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:
        first = first_line(exc, type(exc).__name__)
        raise CheckpointError(f"{show_path(path)}: damaged or foreign weights ({first})") from None
    missing_set = set(missing)
    unexpected = list(unexpected)
    for group in shared.values():
        for name in group:
            if name in missing_set:
                missing_set.remove(name)
            else:
                unexpected.append(name)
    if missing_set or unexpected:
        raise CheckpointError(f"{show_path(path)}: weights do not match the model config")


def trainer_bound(model: torch.nn.Module, state: dict) -> int:
    """The largest trainer.safetensors the run could have written: two Adam moments per
    parameter, the RNG states, a stateful run's carried hidden state."""
    params = sum(p.numel() for p in model.parameters())
    config = getattr(model, "config", None)
    batch = (state.get("train") or {}).get("batch_size", 0)
    layers = getattr(config, "num_layers", 0) or 0
    hidden = getattr(config, "hidden_size", 0) or 0
    carry = 2 * layers * hidden * (batch if isinstance(batch, int) else 0)
    return _bound(2 * params + carry, 4 * len(list(model.parameters())) + 16) + MIB


def check_trainer_dtypes(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Optimizer state in fp32, RNG states as bytes, carried state in floating point."""
    for name, tensor in tensors.items():
        if name.startswith("optim.") and tensor.dtype != torch.float32:
            _refuse_dtype(path, name, tensor.dtype, "F32")
        elif name.startswith("rng.") and tensor.dtype != torch.uint8:
            _refuse_dtype(path, name, tensor.dtype, "U8")
        elif name.startswith("carry.") and not tensor.is_floating_point():
            _refuse_dtype(path, name, tensor.dtype, "F32")


def read_trainer(model: torch.nn.Module, state: dict, directory: Path) -> dict[str, torch.Tensor]:
    """trainer.safetensors checked for size and dtypes; empty when the run has none."""
    path = directory / TRAINER_FILE
    if not os.path.lexists(path):
        return {}
    tensors = read_tensors(path, trainer_bound(model, state))
    check_trainer_dtypes(path, tensors)
    return tensors
