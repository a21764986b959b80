"""Process-group helpers the trainer uses under DistributedDataParallel.

The trainer needs only these: wrap the model, agree on when to stop, average a
loss. Starting the ranks (torchrun or `--ddp`) is `engine.training.launch`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from engine.device import resolve_device
from engine.errors import ConfigError

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
TIMEOUT = timedelta(minutes=30)  # rank 0 may encode a big corpus while the others wait
STOP_REASONS = (
    None,
    "max_steps",
    "time_budget",
    "early_stop",
    "overfitting",
    "stop",
)  # all-reduced as MAX: later wins


@dataclass(frozen=True)
class World:
    rank: int
    world_size: int
    local_rank: int


def torchrun_world() -> World | None:
    """The world torchrun describes in the environment, or None when not under torchrun."""
    if not all(name in os.environ for name in ENV_VARS):
        return None
    try:
        return World(*(int(os.environ[name]) for name in ENV_VARS))
    except ValueError:
        raise ConfigError(
            f"torchrun's {'/'.join(ENV_VARS)} must be integers in the environment"
        ) from None


def launched_by_torchrun() -> bool:
    return torchrun_world() is not None


def rank_device(device: str, local_rank: int) -> str:
    """cuda:LOCAL_RANK when training on CUDA ("auto" with a GPU too), else "cpu"."""
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"local rank {local_rank} has no GPU: {torch.cuda.device_count()} visible "
                "(start at most one process per GPU)"
            )
        return f"cuda:{local_rank}"
    if resolved.type != "cpu":
        raise ConfigError(f"DDP trains on CUDA GPUs (nccl) or CPUs (gloo), not {resolved.type}")
    return "cpu"


def init_process_group(world: World, device: torch.device) -> None:
    """Join the world (MASTER_ADDR / MASTER_PORT in the environment, as torchrun sets)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        rank=world.rank,
        world_size=world.world_size,
        timeout=TIMEOUT,
    )


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model in DDP: construction broadcasts rank 0's weights, backward averages grads."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return DistributedDataParallel(model, device_ids=[index], output_device=index)
    return DistributedDataParallel(model)


def agree(
    reason: str | None, time_progress: float, *, is_main: bool, device: torch.device
) -> tuple[str | None, float]:
    """(stop reason, schedule clock) as rank 0 sees them; any rank may ask to stop.

    One all-reduce (MAX) of two numbers: the other ranks send zeros except for a
    stop request, so rank 0's time-budget decision and clock win.
    """
    code = STOP_REASONS.index(reason) if (is_main or reason == "stop") else 0
    flags = torch.tensor(
        [float(code), time_progress if is_main else 0.0], dtype=torch.float64, device=device
    )
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    agreed_code, agreed_progress = flags.tolist()
    return STOP_REASONS[int(agreed_code)], agreed_progress


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar over all ranks (the global batch's loss from each rank's)."""
    total = value.detach().float().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / dist.get_world_size()
