"""Corpora: what can be one, the vocabulary, statistics, splits and the clear errors."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from engine.data.corpus import Vocab, load_corpus, resolve_files
from engine.errors import CorpusError
from tests.helpers import assert_one_line


def decoded(corpus) -> str:
    return corpus.vocab.decode(np.asarray(corpus.ids).tolist())


# ----- the vocabulary -------------------------------------------------------------------

UNICODE_TEXT = (
    "Hello, wörld! Καλημέρα κόσμε. こんにちは世界。안녕하세요. "
    "emoji 🙂🚀🐍 family 👨\u200d👩\u200d👧 flag 🇫🇷 math 𝔘𝔫𝔦 tab\tnewline\n"
    "combining e\u0301 and rtl שלום مرحبا"
)


def test_vocab_round_trips_any_unicode() -> None:
    vocab = Vocab(sorted(set(UNICODE_TEXT)))
    ids = vocab.encode(UNICODE_TEXT)
    assert ids.dtype == np.int64
    assert len(ids) == len(UNICODE_TEXT)
    assert vocab.decode(ids.tolist()) == UNICODE_TEXT
    assert ids.min() >= 0 and ids.max() == len(vocab) - 1


def test_corpus_round_trips_any_unicode(tmp_path: Path) -> None:
    path = tmp_path / "unicode.txt"
    path.write_text(UNICODE_TEXT, encoding="utf-8")
    corpus = load_corpus(str(path))
    assert decoded(corpus) == UNICODE_TEXT
    assert corpus.vocab.chars == tuple(sorted(set(UNICODE_TEXT)))
    assert len(corpus) == len(UNICODE_TEXT)


def test_vocab_ids_follow_sorted_characters() -> None:
    vocab = Vocab(["\n", " ", "a", "b", "é", "🙂"])
    assert vocab.encode("ba🙂\n").tolist() == [3, 2, 5, 0]
    assert len(vocab) == 6
    assert vocab == Vocab(["\n", " ", "a", "b", "é", "🙂"])
    assert vocab != Vocab(["a", "b"])


def test_vocab_rejects_unknown_characters_or_drops_them() -> None:
    vocab = Vocab(["a", "b", "c"])
    with pytest.raises(CorpusError) as info:
        vocab.encode("abxz")
    assert_one_line(info.value, "x")
    assert vocab.encode("axbz🙂c", drop_unknown=True).tolist() == [0, 1, 2]
    assert vocab.missing("abzx") == ["x", "z"]


@pytest.mark.parametrize("chars", [["b", "a"], ["a", "a"]])
def test_vocab_must_be_sorted_and_unique(chars: list[str]) -> None:
    with pytest.raises(ValueError):
        Vocab(chars)


# ----- what a corpus can be -------------------------------------------------------------


def test_load_a_text_file(text_file: Path, markov_text: str) -> None:
    corpus = load_corpus(str(text_file))
    assert corpus.name == "corpus.txt"
    assert decoded(corpus) == markov_text
    assert corpus.files == [text_file]


def test_load_a_sample_by_name() -> None:
    from engine.data.markov import generate_markov

    corpus = load_corpus("markov")
    assert corpus.name == "markov"
    assert len(corpus) == 200_000
    assert decoded(corpus)[:1000] == generate_markov()[0][:1000]


def test_load_a_directory_recursively(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "pkg" / "deep").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "pkg" / ".cache").mkdir()
    (root / "a.txt").write_text("alpha\n", encoding="utf-8")
    (root / "pkg" / "b.py").write_text("beta = 2\n", encoding="utf-8")
    (root / "pkg" / "deep" / "c.md").write_text("# gamma\n", encoding="utf-8")
    (root / "pkg" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (root / "blob.bin").write_bytes(bytes(range(256)))
    (root / "latin.txt").write_bytes("caf\u00e9\n".encode("latin-1"))  # undecodable as UTF-8
    (root / ".hidden.txt").write_text("HIDDEN FILE\n", encoding="utf-8")
    (root / ".git" / "config").write_text("HIDDEN DIR\n", encoding="utf-8")
    (root / "pkg" / ".cache" / "x.txt").write_text("HIDDEN SUBDIR\n", encoding="utf-8")

    corpus = load_corpus(str(root))
    assert corpus.name == "project"
    text = decoded(corpus)
    assert text == "alpha\n" + "beta = 2\n" + "# gamma\n"  # sorted path order, joined
    assert "HIDDEN" not in text
    assert corpus.files == [root / "a.txt", root / "pkg" / "b.py", root / "pkg" / "deep" / "c.md"]
    assert corpus.skipped_binary == 2
    assert corpus.skipped_undecodable == 1
    stats = corpus.stats()
    assert (stats.files, stats.skipped_binary, stats.skipped_undecodable) == (3, 2, 1)


def test_directory_empty_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "full.txt").write_text("content\n", encoding="utf-8")
    corpus = load_corpus(str(tmp_path))
    assert decoded(corpus) == "content\n"
    assert corpus.files == [tmp_path / "full.txt"]


def test_resolve_files_prefers_a_path_over_a_sample_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("markov").write_text("a local file named like a sample\n", encoding="utf-8")
    _name, files, strict = resolve_files("markov")
    assert files == [Path("markov")] and strict
    assert decoded(load_corpus("markov")) == "a local file named like a sample\n"


# ----- clear, one-line errors -----------------------------------------------------------


def test_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "program.bin"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(200)))
    with pytest.raises(CorpusError) as info:
        load_corpus(str(path))
    assert_one_line(info.value, "program.bin", "binary")


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(CorpusError) as info:
        load_corpus(str(path))
    assert_one_line(info.value, "empty.txt", "empty")


def test_file_with_only_a_bom_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(CorpusError) as info:
        load_corpus(str(path))
    assert_one_line(info.value, "empty")


def test_directory_with_no_text_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"\x00\x01\x02")
    (tmp_path / "b.bin").write_bytes(b"\x00" * 10)
    (tmp_path / ".notes.txt").write_text("hidden text does not count\n", encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        load_corpus(str(tmp_path))
    assert_one_line(info.value, "no", "text", "2 binary")


def test_empty_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "only-hidden").mkdir()
    (tmp_path / ".hidden").write_text("x\n", encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        load_corpus(str(tmp_path))
    assert_one_line(info.value, str(tmp_path.name))


def test_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CorpusError) as info:
        load_corpus(str(tmp_path / "nope.txt"))
    assert_one_line(info.value, "nope.txt", "corpus list")


def test_corpus_too_short_for_one_training_window(tmp_path: Path) -> None:
    path = tmp_path / "short.txt"
    path.write_text("a tiny corpus, far too short\n", encoding="utf-8")
    corpus = load_corpus(str(path))
    corpus.require_length(1)  # fine for a window of one character
    with pytest.raises(CorpusError) as info:
        corpus.require_length(32)
    assert_one_line(info.value, "short.txt", "too short", "33")


def test_trainer_refuses_a_corpus_too_short_for_its_window(tmp_path: Path) -> None:
    from engine.config.train import TrainConfig
    from engine.training.trainer import Trainer
    from tests.helpers import tiny_config

    path = tmp_path / "short.txt"
    path.write_text("x" * 100 + "y" * 100, encoding="utf-8")
    corpus = load_corpus(str(path))
    config = TrainConfig(seq_len=64, batch_size=2, max_steps=1, device="cpu")
    with pytest.raises(CorpusError) as info:
        Trainer(corpus, tiny_config("lstm"), config)
    assert_one_line(info.value, "too short")


# ----- statistics -----------------------------------------------------------------------


def test_stats_match_a_hand_computation(tmp_path: Path) -> None:
    text = "abracadabra\n" * 10 + "zebra\n"
    path = tmp_path / "abra.txt"
    path.write_text(text, encoding="utf-8")
    stats = load_corpus(str(path)).stats(top=3, preview_chars=20)

    counts = Counter(text)
    total = len(text)
    entropy = -sum(n / total * math.log2(n / total) for n in counts.values())
    assert stats.chars == total == 126
    assert stats.vocab_size == len(counts) == 8
    assert stats.entropy_bits == pytest.approx(entropy, abs=1e-4)
    assert stats.entropy_bits == pytest.approx(2.3879, abs=1e-4)  # worked out on paper
    # a: 51, b: 21, r: 21, \n: 11, ...; ties keep vocabulary (code point) order.
    assert stats.most_common == [("a", 51), ("b", 21), ("r", 21)]
    assert stats.preview == text[:20]
    assert stats.files == 1
    info = stats.as_dict()
    assert info["most_common"] == [["a", 51], ["b", 21], ["r", 21]]
    assert {"chars", "vocab_size", "entropy_bits", "preview"} <= set(info)


def test_single_character_corpus_has_zero_entropy(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("a" * 50, encoding="utf-8")
    stats = load_corpus(str(path)).stats()
    assert stats.entropy_bits == 0.0
    assert stats.vocab_size == 1


def test_unigram_is_a_distribution(text_file: Path) -> None:
    corpus = load_corpus(str(text_file))
    probs = corpus.unigram()
    assert probs.shape == (len(corpus.vocab),)
    assert probs.sum() == pytest.approx(1.0)
    assert corpus.counts.sum() == len(corpus)


# ----- splits ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1000, 1001, 1009, 20_000])
def test_split_is_contiguous_ninety_ten(tmp_path: Path, length: int) -> None:
    text = ("".join(chr(ord("a") + i % 26) for i in range(37)) * 1000)[:length]
    path = tmp_path / "split.txt"
    path.write_text(text, encoding="utf-8")
    corpus = load_corpus(str(path))
    train, val = corpus.split()
    assert len(train) == int(length * 0.9)
    assert len(train) + len(val) == length
    assert corpus.vocab.decode(np.asarray(train).tolist()) == text[: len(train)]
    assert corpus.vocab.decode(np.asarray(val).tolist()) == text[len(train) :]
    train, val = corpus.split(0.25)
    assert len(val) == length - int(length * 0.75)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_fraction_must_be_inside_zero_one(text_file: Path, fraction: float) -> None:
    corpus = load_corpus(str(text_file))
    with pytest.raises(CorpusError):
        corpus.split(fraction)
