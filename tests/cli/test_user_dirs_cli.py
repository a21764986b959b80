"""Unusable user directories through the real CLI: one line and exit 2 where the data
directory is needed, a temporary cache (and one warning) where only the cache is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import assert_user_error, cli_env, cli_json, run_cli


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a directory", encoding="utf-8")
    return path


def _env_without_overrides(**extra: str) -> dict[str, str]:
    env = cli_env(**extra)
    env.pop("CHARLM_DATA_DIR", None)
    if "CHARLM_CACHE_DIR" not in extra:
        env.pop("CHARLM_CACHE_DIR", None)
    return env


def test_runs_list_with_the_data_dir_on_a_file(blocker: Path) -> None:
    proc = run_cli("runs", "list", env=cli_env(CHARLM_DATA_DIR=str(blocker)))
    assert_user_error(proc, "cannot use", str(blocker), "data directory", "CHARLM_DATA_DIR")
    assert blocker.read_text(encoding="utf-8") == "not a directory"


def test_runs_list_with_etc_passwd_as_the_data_dir() -> None:
    proc = run_cli("runs", "list", "--json", env=cli_env(CHARLM_DATA_DIR="/etc/passwd"))
    assert_user_error(proc, "/etc/passwd", "a file is in the way")
    assert proc.stdout == ""


def test_home_pointing_to_a_file(blocker: Path) -> None:
    env = _env_without_overrides(HOME=str(blocker))
    env.pop("XDG_DATA_HOME", None)
    env.pop("XDG_CACHE_HOME", None)
    proc = run_cli("runs", "show", "some-run", env=env)
    assert_user_error(proc, str(blocker), "data directory", "HOME")


def test_an_unwritable_xdg_data_home(tmp_path: Path) -> None:
    # /sys refuses new directories even to root; a plain chmod would not stop root
    env = _env_without_overrides(XDG_DATA_HOME="/sys", CHARLM_CACHE_DIR=str(tmp_path))
    proc = run_cli("runs", "list", env=env)
    assert_user_error(proc, "/sys/charlm-tui", "permission denied or read-only")


def test_train_with_an_unusable_cache_uses_a_temporary_one(blocker: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcde fghij\n" * 400, encoding="utf-8")
    env = _env_without_overrides(
        HOME=str(blocker), CHARLM_DATA_DIR=str(tmp_path / "data"), XDG_CACHE_HOME=""
    )
    proc = run_cli(
        "train", "--corpus", corpus, "--out", tmp_path / "run", "--preset", "tiny",
        "--max-steps", "3", "--json", env=env,
    )  # fmt: skip
    payload = cli_json(proc)
    assert payload["steps"] == 3
    warnings = [line for line in proc.stderr.splitlines() if "cache directory" in line]
    assert len(warnings) == 1, proc.stderr
    assert warnings[0].startswith("charlm-tui: warning:") and str(blocker) in warnings[0]
    assert "Traceback" not in proc.stderr


def test_a_data_dir_name_too_long(tmp_path: Path) -> None:
    proc = run_cli("runs", "list", env=cli_env(CHARLM_DATA_DIR=str(tmp_path / ("d" * 300))))
    assert_user_error(proc, "too long")
