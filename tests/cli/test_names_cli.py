"""Names and one-line errors through the real CLI.

- Every `--checkpoint` takes the run names `runs list` shows (generate, eval, inspect,
  compare), and piped `runs list` never cuts a name.
- Names longer than the file system allows, corpora too short to score, a directory
  where metrics.jsonl should be, a newline in a path, blend weights too large: one line.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import assert_user_error, cli_env, cli_json, run_cli, write_markov


def assert_ends_in_one_error(proc, *fragments: str) -> str:
    """Exit 2, no traceback, and the last stderr line is the one-line error (a command
    may have said what it was about to do on the lines before)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    trimmed = type(proc)(proc.args, proc.returncode, proc.stdout, last + "\n")
    return assert_user_error(trimmed, *fragments)


LONG_RUN = "styles-lstm-20260101-120000-" + "a-rather-long-tail-" * 3 + "end"
TOO_LONG = "x" * 300


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose runs folder holds one trained run with a long name."""
    from engine.config.train import TrainConfig
    from engine.data.corpus import load_corpus
    from engine.training.trainer import Trainer
    from tests.helpers import tiny_config

    root = tmp_path_factory.mktemp("named-runs")
    corpus, _ = write_markov(root / "markov.txt", 5_000)
    config = TrainConfig(
        batch_size=4, seq_len=16, max_steps=10, eval_interval=10, eval_chars=128, device="cpu"
    )
    run = root / "data" / "runs" / LONG_RUN
    Trainer(load_corpus(str(corpus)), tiny_config("lstm"), config, out_dir=run).run()
    return root / "data"


@pytest.fixture
def named(data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run from an empty folder, so the name can only be found in the runs folder."""
    monkeypatch.setenv("CHARLM_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    return data_dir / "runs" / LONG_RUN


def test_piped_runs_list_shows_whole_names(data_dir: Path) -> None:
    proc = run_cli("runs", "list", env=cli_env(CHARLM_DATA_DIR=str(data_dir)))
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    names = [line.split()[0] for line in proc.stdout.splitlines()[1:] if line.strip()]
    assert names == [LONG_RUN], proc.stdout


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (("generate",), ("--length", "5", "--json")),
        (("eval",), ("--corpus", "markov", "--json")),
        (("inspect", "units"), ("--corpus-excerpt", "20", "--json")),
        (("inspect", "embeddings"), ("--json",)),
    ],
    ids=["generate", "eval", "inspect-units", "inspect-embeddings"],
)
def test_every_checkpoint_option_takes_a_listed_run_name(
    named: Path, cli_main, command: tuple[str, ...], extra: tuple[str, ...]
) -> None:
    listed = cli_json(cli_main("runs", "list", "--json"))["runs"]
    assert [run["name"] for run in listed] == [LONG_RUN]
    payload = cli_json(cli_main(*command, "--checkpoint", LONG_RUN, *extra))
    assert str(named) in payload["checkpoint"]


def test_a_path_that_exists_wins_over_a_run_name(named: Path, cli_main, tmp_path: Path) -> None:
    (tmp_path / LONG_RUN).mkdir()  # a folder of that name here, not a checkpoint
    proc = cli_main("generate", "--checkpoint", LONG_RUN, "--length", "5")
    assert_user_error(proc, "no checkpoint in", LONG_RUN)


def test_an_unknown_name_says_where_it_looked(named: Path, cli_main) -> None:
    proc = cli_main("generate", "--checkpoint", "no-such-run")
    assert_user_error(proc, "no-such-run", "not a path", str(named.parent))


# ----- one line each ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("runs", "show", TOO_LONG),
        ("generate", "--checkpoint", TOO_LONG),
        ("eval", "--checkpoint", TOO_LONG, "--corpus", "markov"),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_run_names_too_long_for_the_file_system(named: Path, cli_main, args) -> None:
    assert_user_error(cli_main(*args), TOO_LONG)


def test_out_and_corpus_paths_too_long(named: Path, cli_main, tmp_path: Path) -> None:
    corpus, _ = write_markov(tmp_path / "c.txt", 5_000)
    long_out = tmp_path / TOO_LONG / "run"
    proc = cli_main("train", "--corpus", corpus, "--out", long_out, "--preset", "tiny")
    assert_ends_in_one_error(proc, "too long", TOO_LONG)
    proc = cli_main("eval", "--checkpoint", LONG_RUN, "--corpus", tmp_path / TOO_LONG)
    assert_user_error(proc, "too long", TOO_LONG)
    proc = cli_main("train", "--corpus", tmp_path / TOO_LONG, "--out", tmp_path / "r")
    assert_ends_in_one_error(proc, "too long", TOO_LONG)


def test_eval_on_a_one_character_corpus(named: Path, cli_main, tmp_path: Path) -> None:
    corpus = tmp_path / "one.txt"
    corpus.write_text("a", encoding="utf-8")
    assert_user_error(
        cli_main("eval", "--checkpoint", LONG_RUN, "--corpus", corpus), "1 character", "at least 2"
    )
    proc = cli_main("eval", "--checkpoint", LONG_RUN, "--checkpoint", LONG_RUN, "--corpus", corpus)
    assert_user_error(proc, "1 character", "at least 2")


def test_eval_split_val_on_two_characters(named: Path, cli_main, tmp_path: Path) -> None:
    corpus = tmp_path / "two.txt"
    corpus.write_text("ab", encoding="utf-8")
    proc = cli_main("eval", "--checkpoint", LONG_RUN, "--corpus", corpus, "--split", "val")
    assert_user_error(proc, "held-out split", "at least 2", "--split all")


def test_resume_with_metrics_jsonl_a_directory(named: Path, cli_main, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(named, run, symlinks=True)
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").mkdir()
    corpus = Path(named.parent.parent.parent / "markov.txt")
    proc = cli_main("train", "--corpus", corpus, "--out", run, "--resume", "--max-steps", "12")
    assert_ends_in_one_error(proc, "metrics.jsonl", "not a regular file")


def test_a_newline_in_a_path_never_cuts_the_error(cli_main, tmp_path: Path) -> None:
    empty = tmp_path / "e\nmpty.txt"
    empty.write_text("", encoding="utf-8")
    line = assert_user_error(cli_main("corpus", "info", empty), "empty")
    assert str(tmp_path / "e\\nmpty.txt") in line
    folder = tmp_path / "no\nruns"
    line = assert_user_error(cli_main("runs", "list", "--dir", folder))
    assert str(tmp_path / "no\\nruns") in line
    line = assert_user_error(cli_main("runs", "show", folder))
    assert str(tmp_path / "no\\nruns") in line


def test_blend_weights_too_large_are_not_called_zero(named: Path, cli_main) -> None:
    for command in (("generate",), ("eval", "--corpus", "markov")):
        proc = cli_main(
            command[0], "--checkpoint", LONG_RUN, "--checkpoint", LONG_RUN,
            *command[1:], "--weights", "1e308,1e308",
        )  # fmt: skip
        line = assert_user_error(proc, "too large", "not finite")
        assert "zero" not in line


def test_the_app_refuses_an_unknown_run_name_before_it_opens(named: Path) -> None:
    env = cli_env(CHARLM_DATA_DIR=str(named.parent.parent))
    proc = run_cli("--checkpoint", "no-such-run", env=env, timeout=60)
    assert_user_error(proc, "no-such-run", "not a path")
