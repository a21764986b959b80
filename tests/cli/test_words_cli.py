"""`train --tokens word`, then `eval` and `generate` on the word checkpoint, and bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.cli.test_train_cli import train_args
from tests.helpers import assert_user_error, cli_json, run_cli

SENTENCES = ["the cat sat on the mat.", "a dog ran to the park.", "my bird sang in a tree."]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(5)
    path = tmp_path_factory.mktemp("words-cli") / "sentences.txt"
    path.write_text("\n".join(rng.choice(SENTENCES) for _ in range(600)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def word_run(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("words-run") / "run"
    args = train_args(corpus_file, out, "--max-steps", "40", "--tokens", "word")
    return out, cli_json(run_cli(*args, "--word-vocab", "8", "--json"))


def test_train_word_json_keeps_the_contract_and_counts_characters(
    word_run: tuple[Path, dict], corpus_file: Path, tmp_path: Path
) -> None:
    out, payload = word_run
    assert {"val_loss", "val_bpc", "steps", "elapsed_s", "chars_per_s", "checkpoint"} <= set(
        payload
    )
    assert payload["tokens"] == "word" and payload["train"]["tokens"] == "word"
    assert payload["vocab_size"] == len(set(corpus_file.read_text())) + 8
    assert payload["val_bits_per_char"] == pytest.approx(payload["val_bpc"])
    assert payload["val_loss_per_token"] > payload["val_loss"]
    # the same held-out characters as a character model of the same corpus scores
    char_run = cli_json(
        run_cli(*train_args(corpus_file, tmp_path / "char", "--max-steps", "1", "--json"))
    )
    assert char_run["tokens"] == "char" and char_run["val_loss_per_token"] is None
    assert payload["val_chars"] == char_run["val_chars"] == char_run["val_split_chars"]
    state = json.loads((out / "last" / "state.json").read_text(encoding="utf-8"))
    assert state["tokenizer"]["kind"] == "word" and "the" in state["vocab"]


def test_eval_on_a_word_checkpoint(word_run: tuple[Path, dict], corpus_file, cli_main) -> None:
    out, trained = word_run
    scored = cli_json(
        cli_main("eval", "--checkpoint", out, "--corpus", corpus_file, "--device", "cpu", "--json")
    )
    assert scored["tokens"] == "word" and scored["split"] == "val"
    assert scored["loss"] == pytest.approx(trained["val_loss"], rel=1e-5)
    assert scored["chars"] == trained["val_chars"]
    assert scored["bits_per_char"] == pytest.approx(scored["bpc"])


def test_generate_from_a_word_checkpoint(word_run: tuple[Path, dict], corpus_file: Path) -> None:
    out, _ = word_run
    generated = cli_json(
        run_cli(
            "generate", "--checkpoint", out, "--prompt", "the cat", "--length", "45",
            "--num-samples", "3", "--seed", "1", "--device", "cpu", "--json",
        )
    )  # fmt: skip
    assert [len(s) for s in generated["samples"]] == [45, 45, 45]
    assert set("".join(generated["samples"])) <= set(corpus_file.read_text())


def test_stream_and_bad_prompt_on_a_word_checkpoint(word_run, tmp_path: Path, cli_main) -> None:
    out, _ = word_run
    streamed = cli_main(
        "generate", "--checkpoint", out, "--prompt", "a dog", "--length", "30", "--stream",
        "--strategy", "greedy", "--device", "cpu",
    )  # fmt: skip
    assert streamed.returncode == 0, streamed.stderr
    assert len(streamed.stdout.rstrip("\n")) == 30
    unknown = cli_main("generate", "--checkpoint", out, "--prompt", "the €", "--device", "cpu")
    assert_user_error(unknown, "€")
    text = tmp_path / "text.txt"
    text.write_text("the cat sat", encoding="utf-8")
    inspect = cli_main("inspect", "units", "--checkpoint", out, "--text", text)
    assert_user_error(inspect, "character models", "word")


BAD = {
    "bogus-tokens": (["--tokens", "bogus"], ["--tokens", "bogus"]),
    "zero-words": (["--tokens", "word", "--word-vocab", "0"], ["--word-vocab"]),
    "words-without-word-tokens": (["--word-vocab", "50"], ["--tokens word"]),
    "word-conditional": (["--tokens", "word", "--conditional"], []),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_word_input(case: str, corpus_file: Path, tmp_path: Path, cli_main) -> None:
    extra, fragments = BAD[case]
    proc = cli_main(*train_args(corpus_file, tmp_path / "run", "--max-steps", "2", *extra))
    assert_user_error(proc, *fragments)


def test_word_tokens_on_text_without_words(tmp_path: Path, cli_main) -> None:
    path = tmp_path / "punctuation.txt"
    path.write_text("!?., ;:-- ...\n" * 400, encoding="utf-8")
    proc = cli_main(*train_args(path, tmp_path / "run", "--tokens", "word"))
    assert_user_error(proc, "words")
