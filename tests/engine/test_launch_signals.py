"""`launch` (one process per device, as `train --ddp` does with several GPUs) passes a
SIGTERM sent to it alone on to its ranks: they stop at one step and rank 0 saves there,
instead of training on as orphans. Two gloo ranks on the CPU stand in for the GPUs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engine.test_worker import _alive
from tests.helpers import REPO, write_markov

LAUNCHER = """
import json, sys
from engine.models import make_config
from engine.config.train import TrainConfig
from engine.training.launch import launch
from engine.config.presets import preset

if __name__ == "__main__":
    model, train = preset("lstm", "tiny")
    train.update(max_steps=1_000_000, eval_interval=25, device="cpu", precision="fp32")
    config = TrainConfig.from_dict(train)
    outcomes = launch(2, sys.argv[1], "utf-8", make_config("lstm", **model), config, sys.argv[2])
    result = outcomes[0].result
    print(json.dumps({"steps": result.steps, "stop_signal": result.stop_signal}))
"""


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.slow
def test_sigterm_to_the_launcher_reaches_the_ranks(tmp_path: Path) -> None:
    corpus, _ = write_markov(tmp_path / "corpus.txt", 20_000)
    script = tmp_path / "launcher.py"
    script.write_text(LAUNCHER, encoding="utf-8")
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(corpus), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
        start_new_session=True,  # the signal goes to the launcher alone, not a group
    )
    ranks: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while not (out / "last").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        ranks = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in ranks):
            assert time.monotonic() < deadline, "a rank trains on as an orphan"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in ranks:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    result = json.loads(stdout)
    assert result["stop_signal"] == "SIGTERM" and result["steps"] > 25

    from engine.runs.checkpoint import load_checkpoint

    assert load_checkpoint(out, prefer="last", with_trainer=True).step == result["steps"]
