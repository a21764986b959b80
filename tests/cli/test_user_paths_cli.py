"""A `~name` path for a user this machine lacks (a typo of `~/`) is bad input in one line.

pathlib raises RuntimeError for it; every command that took a path ended in a traceback,
and the app crashed when one was typed in the corpus path field.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import UserError
from engine.files import user_path
from tests.helpers import assert_user_error, cli_env, run_cli, write_markov

NOBODY = "~charlm_no_such_user_zq"


def test_user_path_expands_home_and_refuses_an_unknown_user() -> None:
    assert user_path("~/x") == Path.home() / "x"
    assert user_path("plain/x") == Path("plain/x")
    with pytest.raises(UserError, match="no user 'charlm_no_such_user_zq'"):
        user_path(f"{NOBODY}/names.txt")


@pytest.mark.parametrize(
    "args",
    [
        ["corpus", "info", f"{NOBODY}/names.txt"],
        ["train", "--corpus", f"{NOBODY}/names.txt", "--out", "RUN", "--max-steps", "1"],
        ["train", "--corpus", "CORPUS", "--out", f"{NOBODY}/run", "--max-steps", "1"],
        ["generate", "--checkpoint", f"{NOBODY}/run", "--length", "5"],
    ],
    ids=["corpus-info", "train-corpus", "train-out", "generate-checkpoint"],
)
def test_an_unknown_users_home_is_one_line(cli_main, tmp_path: Path, args: list[str]) -> None:
    corpus, _ = write_markov(tmp_path / "m.txt", 5000)
    args = [str(corpus) if a == "CORPUS" else str(tmp_path / "run") if a == "RUN" else a
            for a in args]  # fmt: skip
    assert_user_error(cli_main(*args), "no user 'charlm_no_such_user_zq'")


def test_user_directories_under_an_unknown_users_home(tmp_path: Path) -> None:
    corpus, _ = write_markov(tmp_path / "m.txt", 5000)
    # The cache is only a cache: a temporary one stands in, and says why.
    cached = run_cli("corpus", "info", corpus, env=cli_env(CHARLM_CACHE_DIR=f"{NOBODY}/c"))
    assert cached.returncode == 0, cached.stderr
    assert f"cannot use CHARLM_CACHE_DIR={NOBODY}/c (no such user for its ~)" in cached.stderr
    assert "caching in a temporary directory" in cached.stderr
    # The data directory holds the user's runs: one line, exit 2.
    listed = run_cli("runs", "list", env=cli_env(CHARLM_DATA_DIR=f"{NOBODY}/d"))
    assert_user_error(listed, f"CHARLM_DATA_DIR={NOBODY}/d", "set CHARLM_DATA_DIR")
