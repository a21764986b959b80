"""Line-per-item corpora: detection, duplicates, windows at item starts, items out, novelty."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config.train import TrainConfig
from engine.data.corpus import Corpus, load_corpus
from engine.data.items import (
    corpus_is_items,
    decode_ids,
    item_novelty,
    item_stats,
    item_window_starts,
    looks_like_items,
    split_item_sets,
    split_items,
)
from engine.data.names import synthetic_names
from engine.errors import ConfigError, CorpusError
from engine.training.batches import BatchSource
from engine.training.trainer import Trainer
from tests.helpers import assert_user_error, cli_json, tiny_config


@pytest.fixture(scope="module")
def names_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("names") / "names.txt"
    path.write_text("\n".join(synthetic_names(4000, seed=2)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def names(names_file: Path) -> Corpus:
    return load_corpus(str(names_file))


def test_detection() -> None:
    assert looks_like_items("\n".join(synthetic_names(100)))
    assert looks_like_items("\n".join(["New York", "Paris", "Rome", "Oslo", "Lima"] * 10))
    prose = load_corpus("verse")
    assert not corpus_is_items(prose.vocab.chars, prose.ids)  # long lines with spaces
    assert not looks_like_items("a\nb\nc")  # too few lines to say
    assert not looks_like_items("no newline at all " * 100)


def test_stats_count_duplicates() -> None:
    stats = item_stats(split_items("anna\nbob\nanna\r\ncy\n\nbob\nanna\n"))
    assert (stats.items, stats.unique, stats.duplicates) == (6, 3, 3)
    assert stats.most_duplicated == [("anna", 3), ("bob", 2)]
    assert stats.max_length == 4


def test_decode_round_trip(names: Corpus, names_file: Path) -> None:
    text = names_file.read_text(encoding="utf-8")
    assert decode_ids(names.vocab.chars, names.ids) == text


def test_training_windows_start_at_item_boundaries(names: Corpus) -> None:
    newline = names.vocab.index["\n"]
    train, _ = names.split(0.1)
    starts = item_window_starts(train, newline, 16)
    assert len(starts) > 3000
    assert (np.asarray(train)[starts] == newline).all()
    config = TrainConfig(batch_size=64, seq_len=16, items=True)
    source = BatchSource(train, config, torch.device("cpu"), 3, item_starts=starts)
    seen_first = set()
    for _ in range(5):
        inputs, targets, _ = source.next()
        assert (inputs[:, 0] == newline).all()  # every window opens on "start of item"
        assert (targets[:, 0] != newline).all()  # and first predicts an item's first char
        seen_first.update(targets[:, 0].tolist())
    assert len(seen_first) > 5
    # Without items the same source starts anywhere.
    plain = BatchSource(train, TrainConfig(batch_size=64, seq_len=16), torch.device("cpu"), 3)
    assert not (plain.next()[0][:, 0] == newline).all()


def test_items_need_a_newline_and_random_batching(tmp_path: Path) -> None:
    path = tmp_path / "flat.txt"
    path.write_text("abcdefgh" * 500, encoding="utf-8")
    flat = load_corpus(str(path))
    config = TrainConfig(batch_size=4, seq_len=16, max_steps=1, device="cpu", items=True)
    with pytest.raises(CorpusError, match="no newline"):
        Trainer(flat, tiny_config("lstm"), config)
    with pytest.raises(ConfigError, match="random batching"):
        TrainConfig(items=True, batching="stateful").validate()


def test_item_sets_and_novelty() -> None:
    train, held_out = split_item_sets("ann\nbob\ncar", "la\ndan\neve\n")
    assert train == {"ann", "bob"}  # "carla" was cut by the split: in neither set
    assert held_out == {"dan", "eve"}
    result = item_novelty(["ann", "dan", "zed", "zed", ""], train, held_out)
    assert result["items"] == 4 and result["empty"] == 1
    assert result["novel_vs_train"] == pytest.approx(3 / 4)
    assert result["novel_vs_all"] == pytest.approx(2 / 4)
    assert result["in_held_out"] == pytest.approx(1 / 4)


@pytest.fixture(scope="module")
def items_run(names: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("items-run") / "run"
    config = TrainConfig(
        batch_size=32, seq_len=16, lr=1e-2, warmup_steps=5, max_steps=150, eval_interval=150,
        eval_chars=2048, device="cpu", items=True,
    )  # fmt: skip
    Trainer(names, tiny_config("lstm", hidden_size=64), config, out_dir=out).run()
    return out


def test_generated_items_are_whole_lines(items_run: Path) -> None:
    from engine.decoding.generator import Generator
    from engine.decoding.items import generate_items
    from engine.decoding.params import SamplingParams
    from engine.runs.checkpoint import load_checkpoint

    loaded = load_checkpoint(items_run)
    generator = Generator(loaded.model, loaded.vocab, loaded.unigram)
    made = generate_items(generator, 30, SamplingParams(length=40, seed=1))
    assert len(made) == 30
    assert all("\n" not in item for item in made)
    lengths = [len(item) for item in made]
    assert sum(lengths) / len(lengths) < 20  # they end: the model learnt the newline
    assert all(item.startswith("br") for item in generate_items(
        generator, 5, SamplingParams(length=40, seed=2), "br"
    ))  # fmt: skip
    with pytest.raises(ConfigError, match="one line"):
        generate_items(generator, 2, SamplingParams(), "a\nb")


def test_cli_items(items_run: Path, names_file: Path, tmp_path: Path, cli_main) -> None:
    proc = cli_main("generate", "--checkpoint", items_run, "--items", "20", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[-1] == "" and len(lines) == 21 and all(lines[:-1])

    info = cli_json(cli_main("corpus", "info", names_file, "--json"))
    expected = item_stats(split_items(names_file.read_text(encoding="utf-8")))
    assert info["items"]["items"] == 4000
    assert info["items"]["duplicates"] == expected.duplicates > 0

    compare_args = [
        "compare", "--checkpoint", items_run, "--seed", "1", "--num-samples", "10",
        "--length", "30", "--json",
    ]  # fmt: skip
    payload = cli_json(cli_main(*compare_args))
    assert payload["items"] is True
    sampled = next(r for r in payload["rows"] if r["strategy"] == "temperature 1.0")
    novelty = sampled["item_novelty"]
    assert novelty["items"] == 10
    train, held_out = split_item_sets(*_split_text(names_file))
    fresh = [s for s in sampled["samples"] if s and s not in train]
    assert novelty["novel_vs_train"] == pytest.approx(len(fresh) / 10)
    assert novelty["novel_vs_all"] == pytest.approx(sum(1 for s in fresh if s not in held_out) / 10)

    flat = tmp_path / "flat.txt"
    flat.write_text("abcdefgh" * 500, encoding="utf-8")
    proc = cli_main(
        "train", "--corpus", flat, "--out", tmp_path / "r", "--items", "--preset", "tiny"
    )
    assert_user_error(proc, "no newline")


def _split_text(path: Path) -> tuple[str, str]:
    text = path.read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    return text[:cut], text[cut:]
