"""AdamW for CPU runs, without torch.optim: torch.optim.AdamW's maths and state layout.

Why not torch.optim.AdamW on a CPU: constructing any torch.optim optimizer, and
every `step()`, imports torch._dynamo (about 2.5 s of CPU time, several times
that on a busy machine) even when nothing is compiled, and a time-budgeted run
pays it out of its budget. This class does what torch's foreach AdamW does
(decoupled weight decay, bias-corrected moments, the same op order, so the
same numbers) with the same `state_dict()` layout, so a checkpoint written with
either loads into the other. CUDA runs keep torch's fused AdamW.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

HYPER = ("lr", "betas", "eps", "weight_decay")


class AdamW:
    """The subset of torch.optim.Optimizer the trainer and checkpoints use."""

    def __init__(
        self,
        groups: Iterable[dict],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        self.defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": False,
            "maximize": False,
            "foreach": True,
            "capturable": False,
            "differentiable": False,
            "fused": None,
        }
        self.param_groups = [
            {**self.defaults, **group, "params": list(group["params"])} for group in groups
        ]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for param in group["params"]:
                if set_to_none:
                    param.grad = None
                elif param.grad is not None:
                    param.grad.zero_()

    def _state_of(self, param: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.state.get(param)
        if state is None:
            state = {
                "step": torch.tensor(0.0),
                "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
            }
            self.state[param] = state
        return state

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            states = [self._state_of(p) for p in params]
            steps = [s["step"] for s in states]
            exp_avgs = [s["exp_avg"] for s in states]
            exp_avg_sqs = [s["exp_avg_sq"] for s in states]
            lr, eps, decay = group["lr"], group["eps"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            torch._foreach_add_(steps, 1.0)
            if decay != 0:
                torch._foreach_mul_(params, 1 - lr * decay)
            torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
            counts = [float(step) for step in steps]
            step_sizes = [-lr / (1 - beta1**t) for t in counts]
            correction2_sqrt = [math.sqrt(1 - beta2**t) for t in counts]
            denominators = torch._foreach_sqrt(exp_avg_sqs)
            torch._foreach_div_(denominators, correction2_sqrt)
            torch._foreach_add_(denominators, eps)
            torch._foreach_addcdiv_(params, exp_avgs, denominators, step_sizes)

    # ----- torch.optim's state_dict layout ----------------------------------------------

    def state_dict(self) -> dict:
        index: dict[torch.Tensor, int] = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for param in group["params"]:
                index.setdefault(param, len(index))
                ids.append(index[param])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[p]: dict(s) for p, s in self.state.items() if p in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("the saved optimizer has another number of parameter groups")
        by_index: dict[int, torch.Tensor] = {}
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError("a saved parameter group has another number of parameters")
            by_index.update(zip(saved["params"], group["params"], strict=True))
            for key in HYPER:
                if key in saved:
                    group[key] = tuple(saved[key]) if key == "betas" else saved[key]
        self.state = {}
        for key, values in state_dict["state"].items():
            param = by_index[int(key)]
            self.state[param] = {
                "step": torch.as_tensor(values["step"], dtype=torch.float32).reshape(()).clone(),
                "exp_avg": values["exp_avg"].to(param.device, param.dtype).clone(),
                "exp_avg_sq": values["exp_avg_sq"].to(param.device, param.dtype).clone(),
            }
