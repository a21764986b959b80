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


def cpu_has_amx() -> bool:
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # older torch: no probe, no promise
        return False


def cpu_info() -> tuple[str, frozenset[str]]:
    """The CPU's model name and feature flags, from /proc/cpuinfo where there is one.

    x86 lists its features under `flags`, ARM under `Features`; elsewhere (macOS,
    Windows) the model is platform's guess and the flags are empty.
    """
    import platform

    model, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware", "cpu model") and not model:
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = frozenset(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine() or "unknown CPU", flags


def native_bf16(flags: frozenset[str], amx: bool = False) -> str | None:
    """Which native bf16 arithmetic a CPU has (the flag's name), or None.

    AVX512-BF16 and AMX on x86 and ARM's BF16 extension compute bf16 dot products
    in hardware; without one of them torch emulates bf16 and it is slower than fp32.
    """
    if amx or "amx_bf16" in flags:
        return "amx_bf16"
    for flag in ("avx512_bf16", "bf16", "sve_bf16"):
        if flag in flags:
            return flag
    return None


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
