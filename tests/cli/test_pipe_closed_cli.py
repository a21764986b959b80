"""A reader that stops early (`charlm-tui generate --stream | head -2`): the command
stops there and exits 0 with nothing on stderr but what it had already said."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.data.corpus import Vocab
from engine.runs.checkpoint import save_checkpoint
from tests.helpers import REPO, cli_env, tiny_model

CHARS = sorted(set("abcdefgh .\n"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vocab = Vocab(CHARS)
    run_dir = tmp_path_factory.mktemp("run")
    meta = {"step": 1, "char_counts": np.arange(1, len(vocab) + 1).tolist()}
    save_checkpoint(run_dir, model=tiny_model("lstm", len(vocab)), vocab=vocab, meta=meta)
    return run_dir


def _head(args: list[str], lines: int) -> tuple[int, list[str], str]:
    """`python -m charlm_tui ARGS | head -LINES`: exit code, lines read, stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "charlm_tui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        cwd=REPO,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    read = [proc.stdout.readline() for _ in range(lines)]
    proc.stdout.close()  # head has what it wanted and goes
    stderr = proc.stderr.read()
    return proc.wait(timeout=120), read, stderr


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_generate_into_head_exits_0_quietly(checkpoint: Path, stream: bool) -> None:
    args = ["generate", "--checkpoint", str(checkpoint), "--length", "20000"]
    args += ["--num-samples", "40", "--seed", "1", "--temperature", "2"]
    code, read, stderr = _head([*args, *(["--stream"] if stream else [])], 2)
    assert len(read) == 2 and all(read)
    assert code == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and "Exception" not in stderr
