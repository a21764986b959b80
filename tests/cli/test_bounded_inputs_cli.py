"""Issue 19, through the real entry point: no input file hangs a command or is read
unbounded, and every count a user types has a stated bound (in --help, one line and exit
2 outside it).

Hostile files: a named pipe (it would block a plain open), a link to /dev/zero (it never
ends), a sparse file far over the cap (read whole it would take gigabytes).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.data.corpus import Vocab
from engine.runs.checkpoint import save_checkpoint
from tests.helpers import assert_user_error, cli_env, run_cli, tiny_model
from tests.hostile import HOSTILE


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vocab = Vocab(sorted(set("abcdef \n")))
    out = tmp_path_factory.mktemp("bounded-run")
    save_checkpoint(out, model=tiny_model("lstm", len(vocab)), vocab=vocab, meta={"step": 1})
    return out


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_prompt_file_is_one_line(run: Path, tmp_path: Path, kind: str) -> None:
    make, fragment = HOSTILE[kind]
    path = make(tmp_path / "prompt.txt")
    proc = run_cli("generate", "--checkpoint", run, "--prompt-file", path, timeout=60)
    assert_user_error(proc, "prompt file", fragment)


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_inspect_text_is_one_line(run: Path, tmp_path: Path, kind: str) -> None:
    make, fragment = HOSTILE[kind]
    path = make(tmp_path / "text.txt")
    proc = run_cli("inspect", "units", "--checkpoint", run, "--text", path, timeout=60)
    assert_user_error(proc, fragment)


def test_endless_stdin_prompt_is_cut_at_the_stated_cap(run: Path) -> None:
    with open("/dev/zero", "rb") as zero:
        import subprocess
        import sys

        from tests.helpers import REPO, cli_env

        proc = subprocess.run(
            [sys.executable, "-m", "charlm_tui", "generate", "--checkpoint", str(run),
             "--prompt-file", "-"],
            stdin=zero, capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=60,
        )  # fmt: skip
    assert_user_error(proc, "prompt", "at most 4.0 MB")


@pytest.mark.parametrize(
    ("args", "option", "bound"),
    [
        (("inspect", "units", "--width", "0"), "--width", "greater than or equal to 1"),
        (("inspect", "units", "--width", "-5"), "--width", "greater than or equal to 1"),
        (("inspect", "find", "--pattern", "a", "--width", "1000001"), "--width", "1000"),
        (("inspect", "saliency", "--show", "-1"), "--show", "greater than or equal to 1"),
        (("inspect", "attention", "--show", "0"), "--show", "greater than or equal to 1"),
        (("generate", "--items", "1000000000"), "--items", "less than or equal to 10000"),
        (("generate", "--items", "0"), "--items", "greater than or equal to 1"),
        (("generate", "--prompt", "a", "--items", "-3"), "--items", "1"),
    ],
)
def test_counts_outside_their_stated_bounds_are_one_line(
    run: Path, tmp_path: Path, args: tuple[str, ...], option: str, bound: str
) -> None:
    text = tmp_path / "text.txt"
    text.write_text("abc abc\n" * 10, encoding="utf-8")
    extra = ("--text", text) if args[0] == "inspect" else ()
    proc = run_cli(*args, "--checkpoint", run, *extra, timeout=60)
    assert_user_error(proc, f"invalid value for '{option}'", bound)


def test_lr_find_steps_have_a_stated_bound(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc abc\n" * 100, encoding="utf-8")
    proc = run_cli("lr-find", "--corpus", corpus, "--steps", "99999999999", timeout=60)
    assert_user_error(proc, "invalid value for '--steps'", "less than or equal to 100000")


@pytest.mark.parametrize(
    ("command", "option", "bound"),
    [
        (("inspect", "units"), "--width", "1<=x<=1000"),
        (("generate",), "--items", "1<=x<=10000"),
        (("lr-find",), "--steps", "5<=x<=100000"),
        (("generate",), "--prompt-file", "4 MB"),
    ],
)
def test_help_states_the_bounds(command: tuple[str, ...], option: str, bound: str) -> None:
    proc = run_cli(*command, "--help", env=cli_env(COLUMNS="200", TERM="dumb"))
    assert proc.returncode == 0, proc.stderr
    flat = re.sub(r"[\s│]+", " ", proc.stdout)
    assert option in flat and bound in flat, flat
