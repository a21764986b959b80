"""glibc keeps the large blocks a step frees: a repeated step stops page-faulting them in."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# Frees and re-allocates a 40 MB tensor (a step's gate buffer: over the 32 MB that glibc's
# mmap threshold can rise to) 30 times and counts the minor page faults of the last 20:
# a fresh mmap each time faults ~10,000 pages.
CHURN = textwrap.dedent(
    """
    import json, resource, sys, torch
    from engine.machine.allocator import keep_freed_memory
    applied = keep_freed_memory() if sys.argv[1] == "keep" else False
    def churn():
        t = torch.empty(10 * 1024 * 1024)
        t.fill_(1.0)
        return float(t[-1])
    for _ in range(10):
        churn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        churn()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print(json.dumps({"applied": applied, "faults": faults}))
    """
)


def _churn(mode: str, env: dict | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_step_buffer_is_reused_without_page_faults() -> None:
    default = _churn("default")
    kept = _churn("keep")
    if not kept["applied"]:
        pytest.skip("this libc has no mallopt (not glibc)")
    assert default["faults"] > 20 * 5000, default  # each 40 MB block mapped afresh
    assert kept["faults"] < default["faults"] / 10, (kept, default)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_users_own_malloc_settings_are_left_alone() -> None:
    import os

    env = {**os.environ, "GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}
    assert _churn("keep", env)["applied"] is False
