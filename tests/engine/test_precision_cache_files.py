"""Issue 19: a hostile precision.json (JSON nested 100,000 deep, a link to /dev/zero, a
sparse 2 GB file, not an object) is an empty cache: the probe runs, the verdict is
written in its place, nothing hangs, nothing raises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.machine.precision import CpuFacts, choose_precision
from tests.hostile import link_to_zero, make_sparse, write_deep

ZEN4 = CpuFacts("AMD EPYC 9R14", frozenset({"avx2", "avx512f", "avx512_bf16"}))


def _list(path: Path) -> None:
    path.write_text("[1, 2]", encoding="utf-8")


@pytest.mark.parametrize("make", [write_deep, link_to_zero, make_sparse, _list])
def test_a_hostile_precision_cache_counts_as_empty(tmp_path: Path, make) -> None:
    cache = tmp_path / "precision.json"
    make(cache)
    calls = []

    def probe() -> tuple[float, float]:
        calls.append(1)
        return 2.0, 1.0

    shape = {"model": {"hidden_size": 64}, "batch": [4, 8]}
    cpu = torch.device("cpu")
    choice = choose_precision("auto", cpu, shape=shape, probe=probe, cpu=ZEN4, cache=cache)
    assert choice.name == "bf16" and calls == [1]
    assert not cache.is_symlink() and len(json.loads(cache.read_text(encoding="utf-8"))) == 1
