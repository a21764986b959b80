"""`charlm-tui train` resolves its options once (engine/training/request.py): bad config
fails in one line before the run directory is touched, a resume refuses what cannot
change and says what does, and the size and regularisation follow the data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_train_cli import train_args
from tests.helpers import assert_user_error, cli_json, write_markov


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = write_markov(tmp_path_factory.mktemp("request-corpus") / "markov.txt", 20_000)
    return path


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> Path:
    from tests.helpers import run_cli

    out = tmp_path_factory.mktemp("request-run") / "run"
    cli_json(run_cli(*train_args(corpus_file, out, "--max-steps", "30", "--json")))
    return out


def snapshot(run: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run)): p.read_bytes()
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--set", "device=cuda"], ["--device"]),
        (["--set", "precision=int8"], ["--precision"]),
        (["--precision", "int8"], ["int8"]),
        (["--set", "num_labels=3"], ["num_labels", "labels"]),
    ],
)
def test_settings_that_would_be_ignored_are_refused(
    extra: list[str], fragments: list[str], corpus_file: Path, tmp_path: Path, cli_main
) -> None:
    proc = cli_main(*train_args(corpus_file, tmp_path / "run", "--max-steps", "5", *extra))
    assert_user_error(proc, *fragments)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("out", ["", "/"])
def test_an_out_that_is_no_run_directory_is_refused(
    out: str, corpus_file: Path, tmp_path: Path, cli_main, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    proc = cli_main(*train_args(corpus_file, "x", "--max-steps", "5"), "--out", out)
    assert_user_error(proc, "--out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "setting", ["hidden_size=65536", "seq_len=4096", "val_fraction=0.99999", "num_labels=3"]
)
def test_force_with_bad_config_keeps_the_old_run(
    setting: str, first_run: Path, corpus_file: Path, tmp_path: Path, cli_main
) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(first_run, copy, symlinks=True)
    before = snapshot(copy)
    proc = cli_main(*train_args(corpus_file, copy, "--max-steps", "5", "--force"),
                    "--set", setting)  # fmt: skip
    assert_user_error(proc)
    assert snapshot(copy) == before


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--model", "gru"], ["cannot become gru"]),
        (["--set", "hidden_size=32"], ["architecture", "hidden_size is 64"]),
        (["--tokens", "word"], ["cannot change tokens"]),
    ],
)
def test_resume_refuses_what_cannot_change(
    extra: list[str], fragments: list[str], first_run: Path, corpus_file: Path, cli_main
) -> None:
    before = snapshot(first_run)
    proc = cli_main(*train_args(corpus_file, first_run, "--max-steps", "40", "--resume", *extra))
    assert_user_error(proc, *fragments)
    assert snapshot(first_run) == before


def test_resume_keeps_the_runs_settings_and_says_what_changes(
    first_run: Path, corpus_file: Path, tmp_path: Path, cli_main
) -> None:
    """`--preset notebook` on a resumed tiny run: its batch size (16) and lr (0.01) stay."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(first_run, copy, symlinks=True)
    proc = cli_main(*train_args(corpus_file, copy, "--max-steps", "35", "--resume",
                                "--preset", "notebook", "--json"))  # fmt: skip
    result = cli_json(proc)
    assert (result["train"]["batch_size"], result["train"]["lr"]) == (16, 0.01)
    assert result["model"]["hidden_size"] == 64 and result["steps"] == 35
    assert (
        "resuming with the run's own model and settings (--preset notebook not applied); "
        "changed: max_steps 30 -> 35"
    ) in proc.stderr


def test_a_small_list_read_many_times_is_regularised_and_says_so(tmp_path: Path, cli_main) -> None:
    """300 names (2k training chars) read by 60 steps of 16 x 32: 14 epochs."""
    from engine.data.names import synthetic_names

    names = tmp_path / "names.txt"
    names.write_text("\n".join(synthetic_names(300, seed=2)) + "\n", encoding="utf-8")
    proc = cli_main(*train_args(names, tmp_path / "run", "--max-steps", "60", "--json"))
    result = cli_json(proc)
    assert result["model"]["dropout"] == 0.1 and result["train"]["weight_decay"] == 0.1
    assert "dropout 0.1, weight decay 0.1 for " in proc.stderr
    state = json.loads((tmp_path / "run" / "last" / "state.json").read_text(encoding="utf-8"))
    assert state["model"]["dropout"] == 0.1, "the resolved config is the one saved"
    # An asked dropout is kept, and said to be the user's; the weight decay is still fitted.
    proc = cli_main(*train_args(names, tmp_path / "kept", "--max-steps", "60",
                                "--set", "dropout=0.05", "--json"))  # fmt: skip
    kept = cli_json(proc)
    assert kept["model"]["dropout"] == 0.05 and kept["train"]["weight_decay"] == 0.1
    assert "dropout 0.05 (asked), weight decay 0.1 for " in proc.stderr


def test_lr_find_resolves_as_train_does(corpus_file: Path, cli_main) -> None:
    """`lr-find` takes the same resolution: an ignored setting is refused, and the
    regularisation `train` would pick is the one swept (and said)."""
    base = ["lr-find", "--corpus", corpus_file, "--preset", "tiny", "--device", "cpu",
            "--precision", "fp32", "--steps", "5"]  # fmt: skip
    assert_user_error(cli_main(*base, "--set", "precision=int8"), "--precision")
    assert_user_error(cli_main(*base, "--set", "num_labels=3"), "num_labels")
    proc = cli_main(*base)
    assert proc.returncode == 0, proc.stderr
    assert "regularisation: the preset's" in proc.stderr


def test_a_corpus_of_a_few_hundred_chars_trains_and_says_how(tmp_path: Path, cli_main) -> None:
    corpus = tmp_path / "small.txt"
    corpus.write_text("hello world, this is a tiny corpus.\n" * 8, encoding="utf-8")
    proc = cli_main(*train_args(corpus, tmp_path / "run", "--max-steps", "5", "--json"))
    result = cli_json(proc)
    assert result["steps"] == 5 and result["train"]["seq_len"] == 28
    assert "seq_len 32 -> 28: a 288-char corpus holds a 29-char split" in proc.stderr  # tiny
    state = json.loads((tmp_path / "run" / "last" / "state.json").read_text("utf-8"))
    assert state["train"]["seq_len"] == 28
