"""The CPU AdamW: torch.optim.AdamW's numbers and state layout, without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import torch

from engine.training.optim import AdamW
from tests.helpers import REPO, cli_env


def _pair(weight_decay: float = 0.1) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    torch.manual_seed(0)
    shapes = [(5, 3), (3,), (4, 5)]
    ours = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    return ours, theirs


def _groups(params: list[torch.nn.Parameter], decay: float) -> list[dict]:
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def test_steps_match_torch_adamw() -> None:
    ours, theirs = _pair()
    mine = AdamW(_groups(ours, 0.1), lr=3e-3, betas=(0.9, 0.99))
    torch_opt = torch.optim.AdamW(_groups(theirs, 0.1), lr=3e-3, betas=(0.9, 0.99), foreach=True)
    generator = torch.Generator().manual_seed(1)
    for step in range(25):
        for group in mine.param_groups + torch_opt.param_groups:
            group["lr"] = 3e-3 * (1 - step / 50)  # the trainer's schedule sets lr like this
        grads = [torch.randn(p.shape, generator=generator) for p in ours]
        for p, q, g in zip(ours, theirs, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        mine.step()
        torch_opt.step()
        mine.zero_grad()
        torch_opt.zero_grad()
    for p, q in zip(ours, theirs, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    assert all(p.grad is None for p in ours)


def test_state_dicts_load_across_the_two() -> None:
    ours, theirs = _pair()
    torch_opt = torch.optim.AdamW(_groups(theirs, 0.1), lr=1e-2, betas=(0.9, 0.95))
    for p in theirs:
        p.grad = torch.ones_like(p)
    torch_opt.step()
    mine = AdamW(_groups(ours, 0.0), lr=5.0)
    mine.load_state_dict(torch_opt.state_dict())
    assert mine.param_groups[0]["lr"] == 1e-2 and mine.param_groups[0]["betas"] == (0.9, 0.95)
    assert mine.param_groups[0]["weight_decay"] == 0.1
    saved = mine.state_dict()
    reference = torch_opt.state_dict()
    assert saved["param_groups"][1]["params"] == reference["param_groups"][1]["params"]
    for index, values in reference["state"].items():
        for key, tensor in values.items():
            assert torch.equal(saved["state"][index][key], tensor), (index, key)
    back = torch.optim.AdamW(_groups(theirs, 0.1), lr=1.0)
    back.load_state_dict(saved)
    assert back.param_groups[0]["lr"] == 1e-2


def test_training_on_the_cpu_never_imports_torch_dynamo() -> None:
    script = (
        "import sys\n"
        "from engine.data.corpus import load_corpus\n"
        "from engine.models import make_config\n"
        "from engine.config.train import TrainConfig\n"
        "from engine.training.trainer import Trainer\n"
        "config = TrainConfig(batch_size=2, seq_len=8, max_steps=3, eval_interval=2,"
        " eval_chars=32, device='cpu')\n"
        "model = make_config('lstm', embed_dim=4, hidden_size=8, num_layers=1, dropout=0.0)\n"
        "Trainer(load_corpus('verse'), model, config).run()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=cli_env()
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
