"""`charlm-tui inspect`: a trained LSTM's "inside quotes" unit found from the shell, JSON
shapes of every subcommand, human output, and one-line exit-2 errors for bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from engine.data.corpus import Vocab
from engine.runs.checkpoint import save_checkpoint
from tests.helpers import assert_user_error, quoted_text, run_main, tiny_model

QUOTED = r'"[^"\n]*"'


@pytest.fixture(scope="module")
def quoted_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny LSTM trained briefly (through the CLI) on text with quoted spans."""
    root = tmp_path_factory.mktemp("quoted")
    corpus = root / "quoted.txt"
    corpus.write_text(quoted_text(12_000, seed=1), encoding="utf-8")
    run = root / "run"
    proc = run_main(
        "train", "--corpus", corpus, "--preset", "tiny", "--max-steps", 70,
        "--seed", 1, "--out", run, "--json",
    )  # fmt: skip
    assert proc.returncode == 0
    held_out = root / "held_out.txt"
    held_out.write_text(quoted_text(2500, seed=99), encoding="utf-8")
    return run, held_out


@pytest.fixture(scope="module")
def transformer_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vocab = Vocab(sorted(set('abcdef "-\n')))
    run = tmp_path_factory.mktemp("transformer")
    save_checkpoint(run, model=tiny_model("transformer", len(vocab)), vocab=vocab, meta={"step": 1})
    return run


def as_json(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])


def test_find_reports_an_inside_quotes_unit(cli_main, quoted_run) -> None:
    """The done-when test: a unit with |r| >= 0.6 for "inside quotes" after brief training."""
    run, held_out = quoted_run
    out = as_json(cli_main("inspect", "find", "--checkpoint", run, "--text", held_out,
                           "--pattern", QUOTED, "--top", 5, "--json"))  # fmt: skip
    assert abs(out["top"][0]["r"]) >= 0.6, out["top"]
    assert [abs(m["r"]) for m in out["top"]] == sorted(
        (abs(m["r"]) for m in out["top"]), reverse=True
    )
    text = held_out.read_text(encoding="utf-8")
    covered = sum(m.end() - m.start() for m in re.finditer(QUOTED, text))
    assert out["covered_chars"] == covered and out["chars"] == len(text)
    assert out["best"]["unit"] == out["top"][0]["unit"]
    values = np.asarray(out["best"]["values"])
    inside = np.zeros(len(text))
    for m in re.finditer(QUOTED, text):
        inside[m.start() : m.end()] = 1
    assert np.corrcoef(values, inside)[0, 1] == pytest.approx(out["top"][0]["r"], abs=1e-4)


def test_units_json_and_the_human_strip(cli_main, quoted_run) -> None:
    run, held_out = quoted_run
    text = held_out.read_text(encoding="utf-8")[:300]
    short = held_out.parent / "short.txt"
    short.write_text(text, encoding="utf-8")
    out = as_json(cli_main("inspect", "units", "--checkpoint", run, "--text", short,
                           "--unit", "L0.cell.3", "--unit", "L0.hidden.0", "--json"))  # fmt: skip
    assert out["model_type"] == "lstm" and out["chars"] == 300 and out["text"] == text
    assert [(g["name"], g["size"]) for g in out["groups"]] == [("L0.cell", 64), ("L0.hidden", 64)]
    assert [u["unit"] for u in out["units"]] == ["L0.cell.3", "L0.hidden.0"]
    hidden = np.asarray(out["units"][1]["values"])
    assert hidden.shape == (300,) and np.all(np.abs(hidden) <= 1.0)  # tanh-bounded
    top = as_json(cli_main("inspect", "units", "--checkpoint", run, "--text", short,
                           "--top", 2, "--json"))  # fmt: skip
    stds = [u["std"] for u in top["units"]]
    assert len(stds) == 2 and stds[0] >= stds[1] > 0
    human = cli_main("inspect", "units", "--checkpoint", run, "--text", short, "--unit",
                     "L0.hidden.0", "--width", 40)  # fmt: skip
    assert human.returncode == 0, human.stderr
    assert "L0.hidden.0" in human.stdout
    assert any(bar in human.stdout for bar in "▁▂▃▄▅▆▇█")
    first_line = text[: min(40, text.index("\n") + 1 if "\n" in text[:40] else 40)]
    assert first_line.replace("\n", "⏎") in human.stdout


def test_corpus_excerpt_reads_the_held_out_split_of_the_training_corpus(
    cli_main, quoted_run
) -> None:
    run, _ = quoted_run
    out = as_json(cli_main("inspect", "units", "--checkpoint", run, "--corpus-excerpt", 120,
                           "--offset", 10, "--top", 1, "--json"))  # fmt: skip
    corpus = (run.parent / "quoted.txt").read_text(encoding="utf-8")
    tail = corpus[int(len(corpus) * 0.9) :]
    assert out["text"] == tail[10:130]


def test_attention_rows_sum_to_one(cli_main, transformer_run) -> None:
    text = transformer_run / "text.txt"
    text.write_text('abc "de-f" ab\n' * 4, encoding="utf-8")
    out = as_json(cli_main("inspect", "attention", "--checkpoint", transformer_run, "--text",
                           text, "--position", 40, "--json"))  # fmt: skip
    weights = np.asarray(out["weights"])
    assert weights.shape == (2, 2, 24) and out["start"] == 17 and out["window"] == 24
    assert np.allclose(weights.sum(axis=-1), 1.0, atol=1e-6)
    assert out["window_text"] == text.read_text()[17:41]
    last = as_json(cli_main("inspect", "attention", "--checkpoint", transformer_run, "--text",
                            text, "--json"))  # fmt: skip
    assert last["position"] == 55
    human = cli_main("inspect", "attention", "--checkpoint", transformer_run, "--text", text)
    assert human.returncode == 0 and "head" in human.stdout


def test_saliency_and_embeddings(cli_main, quoted_run, transformer_run) -> None:
    run, held_out = quoted_run
    sal = as_json(cli_main("inspect", "saliency", "--checkpoint", run, "--text", held_out,
                           "--position", 500, "--window", 64, "--json"))  # fmt: skip
    assert sal["window"] == 64 and sal["start"] == 436 and sal["method"] == "gradient_x_input_l2"
    assert sum(sal["scores"]) == pytest.approx(1.0, abs=1e-5) and min(sal["scores"]) >= 0
    assert sal["char"] == held_out.read_text(encoding="utf-8")[500]
    emb = as_json(cli_main("inspect", "embeddings", "--checkpoint", transformer_run,
                           "--neighbours", 3, "--char", "a", "--json"))  # fmt: skip
    assert emb["chars"] == sorted(set('abcdef "-\n'))
    assert np.asarray(emb["points"]).shape == (len(emb["chars"]), 2)
    assert all(len(v) == 3 for v in emb["neighbours"].values())
    assert emb["char_neighbours"] == emb["neighbours"]["a"]
    human = cli_main("inspect", "embeddings", "--checkpoint", transformer_run)
    assert human.returncode == 0 and "character map" in human.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("find", "--pattern", "(oops"), "invalid regular expression"),
        (("find", "--pattern", "z"), "matches no character"),
        (("find", "--pattern", "(?s)."), "matches every character"),
        (("units", "--unit", "L3.cell.0"), "no unit"),
        (("attention",), "needs a Transformer"),
        (("saliency", "--position", 0), "characters before it"),
        (("units", "--position-typo"), "no such option"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli_main, quoted_run, args, fragment) -> None:
    run, held_out = quoted_run
    proc = cli_main("inspect", args[0], "--checkpoint", run, "--text", held_out, *args[1:])
    assert_user_error(proc, fragment)


def test_text_limits_are_errors_not_truncation(cli_main, quoted_run, tmp_path) -> None:
    run, held_out = quoted_run
    long_text = tmp_path / "long.txt"
    long_text.write_text("abc " * 5001, encoding="utf-8")
    proc = cli_main("inspect", "units", "--checkpoint", run, "--text", long_text)
    assert_user_error(proc, "at most 20,000")
    assert_user_error(cli_main("inspect", "units", "--checkpoint", run), "--text FILE")
    both = cli_main("inspect", "units", "--checkpoint", run, "--text", held_out,
                    "--corpus-excerpt", 10)  # fmt: skip
    assert_user_error(both, "one")
    strange = tmp_path / "strange.txt"
    strange.write_text("abc XYZ", encoding="utf-8")
    assert_user_error(
        cli_main("inspect", "units", "--checkpoint", run, "--text", strange), "does not know"
    )
