"""`charlm-tui generate` and `compare`: JSON shapes, streaming, plain output, exit codes.

Most runs go through typer's CliRunner (in-process, fast); a few go through the
real entry point (`python -m charlm_tui`) for its exit codes and streams.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from charlm_tui.cli import app
from engine.data.corpus import Vocab
from engine.runs.checkpoint import save_checkpoint
from tests.helpers import assert_user_error, cli_json, run_cli, tiny_model

CHARS = sorted(set("abcdefgh .\n"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vocab = Vocab(CHARS)
    model = tiny_model("lstm", vocab_size=len(vocab), seed=0)
    run_dir = tmp_path_factory.mktemp("run")
    counts = np.arange(1, len(vocab) + 1).tolist()
    meta = {"step": 1, "char_counts": counts, "corpus": {"name": "not-a-sample"}}
    save_checkpoint(run_dir, model=model, vocab=vocab, meta=meta)
    return run_dir


def invoke(*args: object):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in (result.stderr or ""), result.stderr
    return result


def one_json(result) -> dict:
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def test_generate_json_shape(checkpoint):
    payload = one_json(
        invoke(
            "generate",
            "--checkpoint",
            checkpoint,
            "--prompt",
            "ab",
            "--length",
            30,
            "--num-samples",
            3,
            "--seed",
            1,
            "--top-k",
            5,
            "--json",
        )
    )
    assert len(payload["samples"]) == 3
    assert all(isinstance(s, str) and len(s) == 30 for s in payload["samples"])
    assert payload["chars_per_s"] > 0
    assert payload["params"]["top_k"] == 5 and payload["params"]["seed"] == 1
    assert payload["params"]["length"] == 30 and payload["params"]["strategy"] == "sample"


def test_generate_is_reproducible_and_reports_its_seed(checkpoint):
    args = ("generate", "--checkpoint", checkpoint, "--length", 40, "--json")
    first = one_json(invoke(*args, "--seed", 9))
    assert first["samples"] == one_json(invoke(*args, "--seed", 9))["samples"]
    unseeded = one_json(invoke(*args))
    again = one_json(invoke(*args, "--seed", unseeded["params"]["seed"]))
    assert again["samples"] == unseeded["samples"]


def test_generate_strategies_and_stop(checkpoint):
    base = ("generate", "--checkpoint", checkpoint, "--prompt", "ab", "--length", 25, "--json")
    greedy = one_json(invoke(*base, "--strategy", "greedy"))["samples"][0]
    beam1 = one_json(invoke(*base, "--strategy", "beam", "--beam-width", 1))["samples"][0]
    assert greedy == beam1
    beams = one_json(
        invoke(
            *base,
            "--strategy",
            "beam",
            "--beam-width",
            4,
            "--num-samples",
            2,
            "--length-penalty",
            0.5,
        )
    )["samples"]
    assert len(beams) == 2 and beams[0] != beams[1]
    stop = greedy[3:5]
    cut = one_json(invoke(*base, "--strategy", "greedy", "--stop", stop))["samples"][0]
    assert cut == greedy[: greedy.find(stop) + 2]


def test_stop_accepts_backslash_escapes(checkpoint):
    from charlm_tui.cli_decoding import unescape

    assert unescape(r"\n\n") == "\n\n" and unescape(r"a\tb\\") == "a\tb\\"
    assert unescape(r"\q") == r"\q"
    free = one_json(
        invoke("generate", "--checkpoint", checkpoint, "--length", 300, "--seed", 4, "--json")
    )["samples"][0]
    stopped = one_json(
        invoke(
            "generate",
            "--checkpoint",
            checkpoint,
            "--length",
            300,
            "--seed",
            4,
            "--stop",
            r"\n",
            "--json",
        )
    )["samples"][0]
    assert "\n" in free  # 1 in 11 characters
    assert stopped == free[: free.index("\n") + 1]


def test_plain_output_is_the_samples_on_stdout(checkpoint):
    args = ("generate", "--checkpoint", checkpoint, "--prompt", "ab", "--length", 20)
    result = invoke(*args, "--seed", 2)
    assert result.exit_code == 0
    expected = one_json(invoke(*args, "--seed", 2, "--json"))["samples"][0]
    assert result.stdout == expected + "\n"


def test_stream_json_lines_then_a_final_object(checkpoint):
    args = ("generate", "--checkpoint", checkpoint, "--prompt", "ab", "--length", 50, "--seed", 5)
    result = invoke(*args, "--stream", "--json", "--num-samples", 2)
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    chunks, final = lines[:-1], lines[-1]
    assert chunks and all(c["event"] == "chunk" for c in chunks)
    assert final["event"] == "done" and final["chars_per_s"] > 0
    for index in (0, 1):
        text = "".join(c["text"] for c in chunks if c["sample"] == index)
        assert text == final["samples"][index] and len(text) == 50
    # Sample i of a stream uses seed + i: the first equals a one-sample run with the seed.
    single = one_json(invoke(*args, "--json"))["samples"][0]
    assert final["samples"][0] == single
    plain = invoke(*args, "--stream")
    assert plain.stdout == single + "\n"


def test_stream_of_beams_gives_the_best_beams_whole(checkpoint):
    args = ("generate", "--checkpoint", checkpoint, "--prompt", "ab", "--length", 20)
    args += ("--strategy", "beam", "--beam-width", 3, "--num-samples", 2, "--json")
    beams = one_json(invoke(*args))["samples"]
    lines = [json.loads(line) for line in invoke(*args, "--stream").stdout.splitlines()]
    assert [c["text"] for c in lines[:-1]] == beams
    assert lines[-1]["samples"] == beams


def test_compare_json_rows(checkpoint):
    payload = one_json(
        invoke(
            "compare",
            "--checkpoint",
            checkpoint,
            "--prompt",
            "ab",
            "--length",
            30,
            "--num-samples",
            2,
            "--seed",
            0,
            "--json",
        )
    )
    rows = payload["rows"]
    assert [r["strategy"] for r in rows] == [
        "greedy",
        "temperature 0.5",
        "temperature 1.0",
        "temperature 1.5",
        "top-k 10",
        "top-p 0.9",
        "min-p 0.1",
        "beam 5",
    ]
    for row in rows:
        for key in (
            "unique_chars",
            "entropy",
            "bigram_diversity",
            "distinct_1",
            "distinct_2",
            "distinct_3",
            "repetition_4",
            "mean_logprob",
            "perplexity",
            "chars_per_s",
        ):
            assert isinstance(row[key], (int, float)), (row["strategy"], key)
        assert len(row["samples"]) == 2
        assert row["novelty"] is None  # no --corpus, and the checkpoint's is not a sample


def test_compare_novelty_with_a_corpus_and_the_table(checkpoint, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abc def gh. " * 50, encoding="utf-8")
    args = ("compare", "--checkpoint", checkpoint, "--length", 60, "--num-samples", 2)
    rows = one_json(invoke(*args, "--seed", 1, "--corpus", corpus, "--json"))["rows"]
    assert all(r["novelty"] is None or 0.0 <= r["novelty"] <= 1.0 for r in rows)
    assert any(r["novelty"] is not None for r in rows)
    table = invoke(*args, "--seed", 1)
    assert table.exit_code == 0 and table.stdout == ""
    assert "temperature 1.5" in table.stderr and "beam 5" in table.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--top-p", "0"), "top-p"),
        (("--top-p", "1.5"), "top-p"),
        (("--top-k", "-1"), "top-k"),
        (("--min-p", "2"), "min-p"),
        (("--beam-width", "0", "--strategy", "beam"), "beam width"),
        (("--length", "-1"), "length"),
        (("--temperature", "nan"), "temperature"),
        (("--strategy", "nucleus"), "strategy"),
        (("--repetition-penalty", "0"), "repetition penalty"),
        (("--num-samples", "0"), "num-samples"),
        (("--strategy", "beam", "--beam-width", "2", "--num-samples", "3"), "beam"),
        (("--prompt", "abXY"), "XY"),
        (("--device", "tpu"), "device"),
    ],
)
def test_bad_parameters_exit_2_with_one_line(checkpoint, args, fragment):
    result = invoke("generate", "--checkpoint", checkpoint, *args)
    assert result.exit_code == 2, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("charlm-tui: error:"), result.stderr
    assert fragment.lower() in lines[0].lower()


def test_drop_unknown_makes_the_unknown_prompt_work(checkpoint):
    args = ("generate", "--checkpoint", checkpoint, "--length", 10, "--seed", 0, "--json")
    dropped = one_json(invoke(*args, "--prompt", "aXbY", "--drop-unknown"))["samples"]
    assert dropped == one_json(invoke(*args, "--prompt", "ab"))["samples"]


def test_real_entry_point_json_and_exit_codes(checkpoint, tmp_path):
    payload = cli_json(
        run_cli("generate", "--checkpoint", checkpoint, "--length", 12, "--seed", 3, "--json")
    )
    assert len(payload["samples"]) == 1 and len(payload["samples"][0]) == 12
    assert_user_error(run_cli("generate", "--checkpoint", tmp_path / "missing"), "missing")
    assert_user_error(
        run_cli("generate", "--checkpoint", checkpoint, "--top-p", "0", "--json"), "top-p"
    )
    assert_user_error(run_cli("compare", "--checkpoint", checkpoint, "--length", "x"), "length")
