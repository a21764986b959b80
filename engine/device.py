"""Choosing a device and a precision for it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from engine.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` means CUDA, then Apple's MPS, then the CPU; asking for a missing one is an error."""
    base = "cuda" if name.startswith("cuda:") else name
    if base not in DEVICES:
        raise ConfigError(f"unknown device '{name}': choose one of {', '.join(DEVICES)}")
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA GPU is available")
    if base == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ConfigError("--device mps was asked for, but Apple's MPS is not available")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32.

    `auto` is bf16 on CUDA GPUs that support it and on CPUs with AMX tiles (where
    oneDNN runs bf16 matmuls and LSTM cells over twice as fast as fp32), fp32
    elsewhere: without AMX, bf16 on a CPU is slower than fp32.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device.type == "cpu" and cpu_has_amx():
        return torch.bfloat16
    return None


def cpu_has_amx() -> bool:
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # older torch: no probe, no promise
        return False


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def enable_fast_math(device: torch.device) -> None:
    """TF32 matmuls on CUDA: free speed for training, invisible at bf16 precision."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
