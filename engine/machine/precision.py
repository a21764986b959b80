"""Which precision a run trains in, and why: `--precision auto` decides by measurement.

bf16 autocast pays on a CPU only where bf16 dot products run in hardware (AMX or
AVX512-BF16 on x86, the BF16 extension on ARM); elsewhere torch emulates bf16
and it is slower than fp32, so `auto` keeps fp32 without measuring anything.
Where the hardware is there, whether bf16 wins still depends on the model's
shape (oneDNN's bf16 LSTM kernels win on AMX at a 512-unit cell and can lose at
a 64-unit one), so a short one-off probe times a few forward/backward steps of
the run's own shape in both and keeps the faster. The verdict is cached per CPU
model, torch version, thread count and shape in the user cache, so the next run
with that shape pays nothing.

CUDA GPUs with bf16 train in bf16; Apple's MPS in fp32. `--precision fp32|bf16`
always wins. The chosen precision's label (`bf16 (1.9x faster here)`,
`fp32 (no native bf16 on this CPU)`) goes into the train result and the TUI.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from engine.device import PRECISIONS, cpu_has_amx, cpu_info, native_bf16
from engine.errors import ConfigError, UserError
from engine.files import MIB, read_json, write_atomic

# bf16 must beat fp32 by this much: a tie keeps the exact arithmetic.
MIN_SPEEDUP = 1.05
PROBE_STEPS = 3
CACHE_FILE = "precision.json"
CACHE_MAX_BYTES = 4 * MIB

# Seconds per training step of the run's shape: (fp32, bf16 autocast).
Probe = Callable[[], tuple[float, float]]


@dataclass(frozen=True)
class PrecisionChoice:
    name: str  # "fp32" or "bf16"
    reason: str
    speedup: float | None = None  # bf16 over fp32 where it was measured

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, None for plain fp32."""
        return torch.bfloat16 if self.name == "bf16" else None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.reason})"


@dataclass(frozen=True)
class CpuFacts:
    model: str
    flags: frozenset[str]
    amx: bool = False

    @property
    def bf16(self) -> str | None:
        return native_bf16(self.flags, self.amx)

    @classmethod
    def here(cls) -> CpuFacts:
        model, flags = cpu_info()
        return cls(model, flags, cpu_has_amx())


def choose_precision(
    requested: str,
    device: torch.device,
    *,
    shape: dict,
    probe: Probe | None,
    cpu: CpuFacts | None = None,
    cache: Path | None = None,
) -> PrecisionChoice:
    """The precision for a run of `shape` on `device`.

    `probe` times the shape in both precisions (None: measuring is not allowed,
    e.g. under DDP, where ranks must agree: a cached verdict is still used).
    `cache` is the verdict file (None: the user cache's).
    """
    if requested not in PRECISIONS:
        raise ConfigError(f"unknown precision '{requested}': choose one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        return PrecisionChoice(requested, f"--precision {requested}")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", "CUDA GPU with bf16")
        return PrecisionChoice("fp32", "this GPU has no bf16")
    if device.type != "cpu":
        return PrecisionChoice("fp32", f"bf16 autocast is not used on {device.type}")
    cpu = cpu or CpuFacts.here()
    if cpu.bf16 is None:
        return PrecisionChoice("fp32", "no native bf16 on this CPU")
    key = json.dumps(
        {
            "cpu": cpu.model,
            "bf16": cpu.bf16,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "shape": shape,
        },
        sort_keys=True,
    )
    path = cache if cache is not None else _cache_path()
    verdicts = _read(path)
    timing = verdicts.get(key)
    if timing is None:
        if probe is None:
            return PrecisionChoice("fp32", f"{cpu.bf16} present, bf16 not measured for this shape")
        fp32_s, bf16_s = probe()
        timing = {"fp32_s": fp32_s, "bf16_s": bf16_s}
        verdicts[key] = timing
        _write(path, verdicts)
    return verdict(float(timing["fp32_s"]), float(timing["bf16_s"]))


def verdict(fp32_s: float, bf16_s: float) -> PrecisionChoice:
    """The faster of two measured step times (bf16 only when clearly faster)."""
    if bf16_s == math.inf and math.isfinite(fp32_s):
        return PrecisionChoice("fp32", "bf16 kernels fail on this CPU")
    if not (math.isfinite(fp32_s) and math.isfinite(bf16_s)) or fp32_s <= 0 or bf16_s <= 0:
        return PrecisionChoice("fp32", "the bf16 probe failed")
    speedup = fp32_s / bf16_s
    if speedup >= MIN_SPEEDUP:
        return PrecisionChoice("bf16", f"{speedup:.1f}x faster here", speedup)
    return PrecisionChoice("fp32", f"bf16 was {speedup:.2f}x of its speed here", speedup)


def probe_step_seconds(
    model: torch.nn.Module,
    batch_size: int,
    seq_len: int,
    vocab_size: int,
    device: torch.device,
    steps: int = PROBE_STEPS,
    bf16: bool = True,
) -> tuple[float, float]:
    """Best-of-`steps` seconds of one forward/backward of this shape: (fp32, bf16 autocast).

    Runs on a copy of the model with the random state saved and put back, so a
    probed run trains exactly as an unprobed one would. bf16 kernels that fail
    (oneDNN has no bf16 LSTM without AVX512) count as infinitely slow, and so does
    bf16 when `bf16` is False (not measured).
    """
    with torch.random.fork_rng(devices=[]):
        probe_model = copy.deepcopy(model).train()
        tokens = torch.randint(0, vocab_size, (batch_size, seq_len + 1), device=device)
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        best = []
        for dtype in (None, torch.bfloat16) if bf16 else (None,):
            seconds = math.inf
            try:
                for attempt in range(steps + 1):  # the first call pays one-off kernel set-up
                    started = time.perf_counter()
                    with torch.autocast(device.type, torch.bfloat16, enabled=dtype is not None):
                        logits, _ = probe_model(inputs)
                        loss = F.cross_entropy(
                            logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1)
                        )
                    loss.backward()
                    probe_model.zero_grad(set_to_none=True)
                    if attempt:
                        seconds = min(seconds, time.perf_counter() - started)
            except RuntimeError:
                if dtype is None:
                    raise
                seconds = math.inf
            best.append(seconds)
    return best[0], best[1] if bf16 else math.inf


def _cache_path() -> Path:
    from engine.paths import cache_dir

    return cache_dir() / CACHE_FILE


def _read(path: Path) -> dict:
    """The cached verdicts; a cache that is not a small regular JSON file counts as empty
    (a FIFO or a link to /dev/zero is never waited on nor read whole)."""
    try:
        data = read_json(path, CACHE_MAX_BYTES, "precision cache")
    except UserError:
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, verdicts: dict) -> None:
    """Atomically (a fresh O_EXCL temporary renamed over: a planted link is replaced,
    never written through); a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(verdicts, indent=1), durable=False)
    except OSError:
        pass
