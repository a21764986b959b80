"""Labelled corpora: both layouts, bad label sets, per-label splits, windows inside one label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config.train import TrainConfig
from engine.data.labels import label_sizes, load_labelled_corpus, looks_labelled
from engine.errors import ConfigError, CorpusError
from engine.training.batches import BatchSource
from tests.helpers import assert_one_line


def _decode(corpus, start: int, end: int) -> str:
    return corpus.vocab.decode(np.asarray(corpus.ids[start:end]).tolist())


def test_directory_labels_are_its_top_level_entries(tmp_path: Path) -> None:
    (tmp_path / "verse.txt").write_text("roses are red\n", encoding="utf-8")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "a.py").write_text("x = 1\n", encoding="utf-8")
    (tmp_path / "code" / "b.py").write_text("y = 2\n", encoding="utf-8")
    (tmp_path / ".hidden").write_text("never", encoding="utf-8")
    corpus = load_labelled_corpus(str(tmp_path))
    assert corpus.labels == ("code", "verse")
    texts = {corpus.labels[lab]: _decode(corpus, s, e) for s, e, lab in corpus.segments.tolist()}
    assert texts == {"code": "x = 1\ny = 2\n", "verse": "roses are red\n"}
    assert label_sizes(corpus) == [{"name": "code", "chars": 12}, {"name": "verse", "chars": 14}]
    assert looks_labelled(str(tmp_path))


def test_tsv_items_are_grouped_by_label(tmp_path: Path) -> None:
    path = tmp_path / "items.tsv"
    path.write_text("b\tsecond\na\tfirst\nb\tthird\n\n", encoding="utf-8")
    corpus = load_labelled_corpus(str(path))
    assert corpus.labels == ("a", "b")
    texts = [_decode(corpus, s, e) for s, e, _ in corpus.segments.tolist()]
    assert texts == ["first", "second\nthird"]
    assert looks_labelled(str(path))


@pytest.mark.parametrize(
    ("lines", "fragment"),
    [
        ("a\tonly one label\n", "at least two labels"),
        ("a\tx\n\ty\n", "empty label name"),
        ("a\tx\nb\x07\ty\n", "not a usable name"),
        ("a\tx\nno tab here\n", "label<TAB>text"),
        ("a\tx\nb=1\ty\n", "not a usable name"),
        ("a\tx\nnone\ty\n", "reserved"),
    ],
)
def test_bad_label_sets_are_one_line_errors(tmp_path: Path, lines: str, fragment: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(lines, encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        load_labelled_corpus(str(path))
    assert_one_line(info.value, fragment)


def test_a_label_with_no_text_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("some text", encoding="utf-8")
    (tmp_path / "b").mkdir()
    with pytest.raises(CorpusError) as info:
        load_labelled_corpus(str(tmp_path))
    assert_one_line(info.value, "'b'", "no text")


def test_each_label_is_split_on_its_own(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a" * 100, encoding="utf-8")
    (tmp_path / "b.txt").write_text("b" * 50, encoding="utf-8")
    corpus = load_labelled_corpus(str(tmp_path))
    train, val = corpus.label_split(0.1)
    assert train.segments.tolist() == [[0, 90, 0], [90, 135, 1]]
    assert val.segments.tolist() == [[0, 10, 0], [10, 15, 1]]
    plain_train, plain_val = corpus.split(0.1)  # unlabelled callers get the same parts
    assert np.array_equal(plain_train, train.ids) and np.array_equal(plain_val, val.ids)


def test_windows_never_straddle_two_labels_and_dropout_blanks_some() -> None:
    # Three labels whose text is its own label id: a straddling window would mix values.
    sizes = [40, 300, 25]
    ids = np.concatenate([np.full(n, k, dtype=np.uint8) for k, n in enumerate(sizes)])
    ends = np.cumsum(sizes)
    segments = np.stack([ends - sizes, ends, np.arange(3)], axis=1)
    config = TrainConfig(batch_size=400, seq_len=20)
    source = BatchSource(ids, config, torch.device("cpu"), 3, segments=segments, label_dropout=0.1)
    seen = set()
    dropped = 0
    for _ in range(5):
        inputs, targets, conditions = source.next_labelled()
        rows = torch.cat([inputs, targets[:, -1:]], dim=1)
        assert (rows == rows[:, :1]).all()  # every window inside one label
        labelled = conditions > 0
        assert (conditions[labelled] - 1 == rows[labelled, 0]).all()  # with its own label
        dropped += int((~labelled).sum())
        seen.update(rows[:, 0].tolist())
    assert seen == {0, 1, 2}  # the 25-char label still gets its (5) windows
    assert 0.06 < dropped / 2000 < 0.14


def test_stateful_batching_cannot_keep_windows_in_a_label() -> None:
    ids = np.zeros(1000, dtype=np.uint8)
    config = TrainConfig(batch_size=4, seq_len=20, batching="stateful")
    with pytest.raises(ConfigError) as info:
        BatchSource(ids, config, torch.device("cpu"), 3, segments=np.array([[0, 500, 0]]))
    assert_one_line(info.value, "random batching")
