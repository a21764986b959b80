"""The real app in a real terminal (tmux) loses no run to a signal, and gives the terminal back.

`charlm-tui` starts in a tmux pane, trains a tiny run that never saves on its own
(no periodic checkpoint), then the terminal is closed (`tmux kill-session`: SIGHUP
to the pane's process group) or the app gets SIGTERM. The run must be on disk and
loadable, every process of the app gone; after SIGTERM the pane is out of the
alternate screen, with mouse reporting off and the cursor shown.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, write_markov

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]

# The form as the app saves it: the tiny preset, no step or time limit, and evaluations
# (with their checkpoints) so rare that none happens before the signal.
FORM = {
    "model_type": "lstm",
    "preset": "tiny",
    "max_steps": "",
    "time_budget": "",
    "eval_interval": "1000000",
}


class Pane:
    """One tmux session on a private server, running one command."""

    def __init__(self, tmp_path: Path, command: str) -> None:
        self.tmux = ["tmux", "-L", f"charlm-test-{os.getpid()}-{tmp_path.name}"]
        self.run("new-session", "-d", "-s", "app", "-x", "160", "-y", "48", command)

    def run(self, *args: str) -> str:
        return subprocess.run(
            [*self.tmux, *args], capture_output=True, text=True, timeout=20, check=True
        ).stdout

    def show(self, fmt: str) -> str:
        return self.run("display-message", "-p", "-t", "app", fmt).strip()

    def text(self) -> str:
        return self.run("capture-pane", "-p", "-t", "app")

    def wait_for(self, fragment: str, timeout: float = 45.0) -> None:
        deadline = time.monotonic() + timeout
        while fragment not in self.text():
            assert time.monotonic() < deadline, f"no {fragment!r} on screen:\n{self.text()}"
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True, timeout=20)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def app_command(tmp_path: Path) -> str:
    """The shell command that starts the app on a small corpus, the form set to `FORM`."""
    data = tmp_path / "data"
    data.mkdir()
    corpus, _ = write_markov(tmp_path / "corpus.txt", 20_000)
    state = {"version": 1, "corpus": str(corpus), "form": FORM, "knobs": {}, "prompt": ""}
    (data / "app-state.json").write_text(json.dumps(state), encoding="utf-8")
    env = {
        "CHARLM_DATA_DIR": str(data),
        "CHARLM_CACHE_DIR": os.environ["CHARLM_CACHE_DIR"],
        "CHARLM_DEVICE": "cpu",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
    }
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    app = f"{shlex.quote(sys.executable)} -m charlm_tui --corpus {shlex.quote(str(corpus))}"
    return f"cd {shlex.quote(str(REPO))} && env {assignments} {app}"


def _train(pane: Pane) -> tuple[int, list[int]]:
    """F3, F5: training under way for a moment; (the app's pid, its children's)."""
    pane.wait_for("engine ready")
    pane.run("send-keys", "-t", "app", "F3")
    time.sleep(0.5)
    pane.run("send-keys", "-t", "app", "F5")
    pane.wait_for("engine training")
    time.sleep(2.0)
    shell = int(pane.show("#{pane_pid}"))
    app = next(pid for pid in [shell, *_children(shell)] if _is_app(pid))
    return app, _children(app)


def _is_app(pid: int) -> bool:
    """`python -m charlm_tui ...` itself (not the shell whose command line names it)."""
    try:
        return b"charlm_tui" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


def _wait_gone(pids: list[int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "processes of the app outlived it"
        time.sleep(0.1)


def _kill_left(pids: list[int]) -> None:
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _assert_run_saved(data: Path) -> None:
    from engine.runs.checkpoint import load_checkpoint

    runs = list((data / "runs").iterdir())
    assert len(runs) == 1, runs
    checkpoint = load_checkpoint(runs[0], prefer="last", with_trainer=True)
    assert checkpoint.step > 0 and checkpoint.trainer_tensors


def test_closing_the_terminal_saves_the_run(tmp_path: Path, app_command: str) -> None:
    pane = Pane(tmp_path, app_command)
    processes: list[int] = []
    try:
        app, children = _train(pane)
        processes = [app, *children]
        pane.run("kill-session", "-t", "app")  # the terminal closes: SIGHUP
        _wait_gone(processes)
    finally:
        pane.close()
        _kill_left(processes)
    _assert_run_saved(tmp_path / "data")


def test_sigterm_saves_the_run_and_gives_the_terminal_back(
    tmp_path: Path, app_command: str
) -> None:
    pane = Pane(tmp_path, f"sh -c {shlex.quote(app_command + '; echo EXITED $?; sleep 60')}")
    processes: list[int] = []
    try:
        app, children = _train(pane)
        processes = [app, *children]
        assert pane.show("#{alternate_on}") == "1"
        os.kill(app, signal.SIGTERM)
        _wait_gone(processes)
        pane.wait_for("EXITED", timeout=10)
        flags = "#{mouse_any_flag}#{mouse_standard_flag}#{mouse_button_flag}#{mouse_sgr_flag}"
        assert pane.show("#{alternate_on}") == "0", "still on the alternate screen"
        assert pane.show(flags) == "0000", "mouse reporting left on"
        assert pane.show("#{cursor_flag}") == "1", "cursor left hidden"
        assert f"EXITED {128 + signal.SIGTERM}" in pane.text()
    finally:
        pane.close()
        _kill_left(processes)
    _assert_run_saved(tmp_path / "data")
