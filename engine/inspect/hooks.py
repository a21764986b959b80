"""Forward hooks that see only their own forward pass.

PyTorch hooks belong to the module, not to the call: while the inspect code
hooks a model, a generation running on the same model in another engine
thread, or a second inspect request, fires the same hooks. A hook wrapped by
`this_thread_only` ignores every call made from another thread, and
`inspecting(model)` lets one inspect computation at a time switch a model to
eval mode and hook it, so two requests never mix their captures or restore
each other's training flag half-way.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from torch import nn

Hook = TypeVar("Hook", bound=Callable[..., object])

_INSPECT_LOCK = threading.RLock()


def this_thread_only(hook: Hook) -> Hook:
    """`hook`, acting only on forward passes made by the thread that creates it."""
    owner = threading.get_ident()

    def guarded(*args: object) -> object:
        if threading.get_ident() != owner:
            return None
        return hook(*args)

    return guarded  # type: ignore[return-value]


@contextlib.contextmanager
def inspecting(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) for the duration, one inspect computation at a time."""
    with _INSPECT_LOCK:
        was_training = model.training
        model.eval()
        try:
            yield
        finally:
            model.train(was_training)
