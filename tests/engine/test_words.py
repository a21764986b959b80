"""Word tokens (engine/data/words.py): exact round trips, top-N choice, per-character scoring."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config.train import TrainConfig
from engine.data.corpus import Vocab, load_corpus
from engine.data.words import (
    WordVocab,
    build_word_vocab,
    vocab_from_state,
    word_corpus,
)
from engine.decoding.generator import Generator
from engine.decoding.params import SamplingParams
from engine.errors import CheckpointError, ConfigError, CorpusError
from engine.runs.checkpoint import load_checkpoint, save_checkpoint
from engine.training.eval_windows import WindowSampler, evaluate_windows
from engine.training.evaluate import evaluate_split
from engine.training.trainer import Trainer
from tests.helpers import assert_one_line, tiny_config, tiny_model

ALPHABET = "abcdeXYZ019 \n\t.,;'!-é"
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "Zed"]


def _random_text(rng: random.Random, length: int) -> str:
    """Text of the alphabet with words, runs of spaces, punctuation glued to words."""
    pieces = []
    while sum(map(len, pieces)) < length:
        kind = rng.random()
        if kind < 0.4:
            pieces.append(rng.choice(WORDS))
        elif kind < 0.7:
            pieces.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 9))))
        else:
            pieces.append(rng.choice([" ", "  ", "\n", "\t", ".", "'", " \n "]))
    return "".join(pieces)


@pytest.fixture(scope="module")
def vocab() -> WordVocab:
    train = " ".join(["the cat sat on the mat."] * 5 + ["a dog ran to the cat"])
    return build_word_vocab(train, sorted(set(ALPHABET) | set("".join(WORDS))), max_words=5)


def test_round_trip_is_exact_for_any_text_of_the_corpus_characters(vocab: WordVocab) -> None:
    rng = random.Random(7)
    for _ in range(300):
        text = _random_text(rng, rng.randint(0, 80))
        ids = vocab.encode(text)
        assert vocab.decode(ids) == text
        assert ids.dtype == np.int64 and ((ids >= 0) & (ids < len(vocab))).all()


def test_rare_and_unseen_words_are_spelled_in_characters(vocab: WordVocab) -> None:
    ids = vocab.encode("the Zed sat cab")
    pieces = [vocab.chars[i] for i in ids]
    # "the" and "sat" are top words; "Zed" (one occurrence: not top 5) and "cab" are spelled.
    assert pieces == ["the", " ", "Z", "e", "d", " ", "sat", " ", "c", "a", "b"]
    assert vocab.decode(ids) == "the Zed sat cab"


def test_whitespace_and_punctuation_are_single_character_tokens(vocab: WordVocab) -> None:
    ids = vocab.encode("cat.\n\n  the")
    assert [vocab.chars[i] for i in ids] == ["cat", ".", "\n", "\n", " ", " ", "the"]


def test_top_n_words_come_from_the_text_by_frequency() -> None:
    text = "bb bb bb aa aa cc cc dd ee ee ee ee x y z"
    vocab = build_word_vocab(text, sorted(set(text)), max_words=3)
    # characters first, sorted (the ids a character model gives them) ...
    assert vocab.chars[: vocab.char_count] == tuple(sorted(set(text)))
    # ... then the 3 most frequent words of 2+ characters; ties alphabetical (aa before cc)
    assert vocab.words == ("ee", "bb", "aa")
    assert len(vocab) == len(set(text)) + 3
    assert build_word_vocab(text, sorted(set(text)), max_words=100).words == (
        "ee", "bb", "aa", "cc", "dd",
    )  # fmt: skip


def test_unknown_characters_raise_one_line_or_are_dropped(vocab: WordVocab) -> None:
    with pytest.raises(CorpusError) as info:
        vocab.encode("the cat €")
    assert_one_line(info.value, "not in the vocabulary", "€")
    assert vocab.decode(vocab.encode("the € cat", drop_unknown=True)) == "the  cat"
    assert vocab.missing("the € cat") == ["€"]


def test_bad_word_counts_and_texts_without_words() -> None:
    with pytest.raises(CorpusError) as info:
        build_word_vocab("!!! ... ??? --- \n", sorted(set("!.?- \n")))
    assert_one_line(info.value, "no", "words")
    for bad in (0, -3, 10**7, 2.5, True):
        with pytest.raises(CorpusError):
            build_word_vocab("some words here", sorted(set("some words here")), bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        TrainConfig(tokens="bogus").validate()
    with pytest.raises(ConfigError):
        TrainConfig(tokens="word", word_vocab=0).validate()


def test_word_corpus_splits_the_same_characters_as_the_char_corpus(tmp_path: Path) -> None:
    text = _random_text(random.Random(3), 5000)
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    chars = load_corpus(str(path))
    words = word_corpus(chars, max_words=20, val_fraction=0.2)
    char_train, char_val = chars.split(0.2)
    train, val = words.split(0.2)
    assert words.vocab.decode(train) == chars.vocab.decode(np.asarray(char_train).tolist())
    assert words.vocab.decode(val) == chars.vocab.decode(np.asarray(char_val).tolist())
    assert words.text_chars == len(text) and len(words) < len(text)
    # the vocabulary never looks at the held-out text
    val_text = chars.vocab.decode(np.asarray(char_val).tolist())
    only_val = "Qqqqzzz"
    path.write_text(text[: len(text) - len(val_text)] + (only_val + " ") * 50, encoding="utf-8")
    later = word_corpus(load_corpus(str(path)), max_words=20, val_fraction=0.2)
    assert only_val not in later.vocab.words
    # another fraction re-tokenizes the text at that cut
    _, val_10 = words.split(0.1)
    assert words.vocab.decode(val_10) == chars.vocab.decode(
        np.asarray(chars.split(0.1)[1]).tolist()
    )


class _Uniform(torch.nn.Module):
    """A 'model' that gives every token the same probability: NLL is ln V per token."""

    max_context = None

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, tokens, state=None, condition=None):
        return torch.zeros(*tokens.shape, self.vocab_size), state

    def select_state(self, state, rows):
        return state


def test_bits_per_char_is_the_token_nll_over_the_characters_by_hand() -> None:
    vocab = WordVocab([" ", "a", "b", "ab"])
    ids = vocab.encode("a ab ab")  # a | " " | ab | " " | ab
    assert [vocab.chars[i] for i in ids] == ["a", " ", "ab", " ", "ab"]
    result = evaluate_split(_Uniform(4), ids, token_chars=vocab.token_lengths())
    # 4 scored tokens (all but the first) cost ln 4 nats = 2 bits each: 8 bits over the
    # 6 characters " ab ab" -> 4/3 bits per char; per token 2 bits (ln 4 nats).
    assert result.tokens_scored == 4 and result.chars == 6
    assert result.bpc == pytest.approx(8 / 6)
    assert result.loss == pytest.approx(4 * math.log(4) / 6)
    assert result.loss_per_token == pytest.approx(math.log(4))
    assert result.as_dict("val_")["val_bits_per_char"] == pytest.approx(4 / 3)
    # without token lengths (a character model) the same ids are scored per id
    plain = evaluate_split(_Uniform(4), ids)
    assert plain.chars == 4 and plain.loss == pytest.approx(math.log(4))
    # the periodic windows divide by the characters of their targets too
    sampler = WindowSampler(ids, 4, 4, 0, torch.device("cpu"))
    windowed = evaluate_windows(_Uniform(4), sampler, None, token_chars=vocab.token_lengths())
    assert windowed.bpc == pytest.approx(8 / 6)


STRUCTURED = ["the cat sat on the mat.", "a dog ran to the park.", "my bird sang in a tree."]


@pytest.fixture(scope="module")
def structured(tmp_path_factory: pytest.TempPathFactory):
    rng = random.Random(11)
    text = "\n".join(rng.choice(STRUCTURED) for _ in range(1500)) + "\n"
    path = tmp_path_factory.mktemp("words") / "sentences.txt"
    path.write_text(text, encoding="utf-8")
    return load_corpus(str(path))


def _word_config(**values: object) -> TrainConfig:
    base = dict(
        batch_size=8, seq_len=16, lr=2e-2, warmup_steps=3, max_steps=300, eval_interval=100,
        eval_chars=512, device="cpu", precision="fp32", seed=5, tokens="word", word_vocab=50,
    )  # fmt: skip
    base.update(values)
    return TrainConfig(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("model_type", "steps"), [("lstm", 300), ("transformer", 400)])
def test_a_word_model_learns_text_with_known_structure(structured, model_type, steps) -> None:
    # seq_len = the tiny transformer's block size: the whole-split score uses every position
    config = _word_config(max_steps=steps, seq_len=24)
    trainer = Trainer(structured, tiny_config(model_type, dropout=0.0), config)
    result = trainer.run()
    assert result.tokens == "word" and isinstance(trainer.corpus.vocab, WordVocab)
    assert len(trainer.corpus.vocab) == len(structured.vocab) + 14  # 14 words of 2+ letters
    # Each line is one of three sentences: after its first word the rest is fixed. A model
    # that uses no context pays the unigram entropy of the tokens (about 1.28 nats/char
    # here); one that learnt the structure pays far less.
    train_ids, _ = trainer.corpus.split(0.1)
    p = np.bincount(train_ids, minlength=len(trainer.corpus.vocab)) / len(train_ids)
    unigram = -(p[p > 0] * np.log(p[p > 0])).sum() * len(train_ids)
    unigram /= trainer.corpus.vocab.token_lengths()[train_ids].sum()
    losses = [h["val_loss"] for h in trainer.history]
    assert result.val_loss < 0.6 * unigram and result.val_loss < losses[0], (unigram, losses)
    # the training loss is per character too (per token it would be ~1.8x the val loss)
    train_loss = trainer.history[-1]["train_loss"]
    assert 0.7 < train_loss / result.val_loss < 1.3, (train_loss, result.val_loss)
    assert result.val_bits_per_char == pytest.approx(result.val_loss / math.log(2))
    assert result.val_loss_per_token > result.val_loss  # a token is more than one character
    _, val = structured.split(0.1)
    assert result.val_chars == len(val) - 1  # every held-out character after the first one
    # chars/s counts characters of text: more than the tokens per second it trained on
    tokens_per_s = result.steps * config.batch_size * config.seq_len / result.train_s
    mean_chars = trainer.corpus.vocab.token_lengths()[train_ids].mean()
    assert result.chars_per_s / tokens_per_s > 1.2
    assert result.chars_per_s / tokens_per_s == pytest.approx(mean_chars, rel=0.25)


def test_word_checkpoint_round_trip_and_generation_in_characters(structured, tmp_path) -> None:
    learner = tiny_config("lstm", embed_dim=16, hidden_size=64, num_layers=1, dropout=0.0)
    trainer = Trainer(structured, learner, _word_config(), out_dir=tmp_path / "run")
    result = trainer.run()
    state = json.loads((Path(result.checkpoint) / "state.json").read_text(encoding="utf-8"))
    assert state["tokenizer"] == {"kind": "word", "chars": len(structured.vocab), "words": 14}
    assert state["vocab"] == list(trainer.corpus.vocab.chars)
    loaded = load_checkpoint(tmp_path / "run")
    assert isinstance(loaded.vocab, WordVocab) and loaded.vocab == trainer.corpus.vocab
    generator = Generator(loaded.model, loaded.vocab, loaded.unigram)
    for strategy in ("greedy", "sample", "beam"):
        params = SamplingParams(strategy=strategy, length=37, seed=3)
        (text,) = generator.generate("the cat", params)
        assert len(text) == 37, (strategy, text)
        streamed = "".join(info.char for info in generator.stream("the cat", params))
        assert len(streamed) == 37
        if strategy != "sample":
            assert streamed == text
    # greedy on a model that learnt the sentences continues them
    (greedy,) = generator.generate("the cat sat on", SamplingParams(strategy="greedy", length=9))
    assert greedy == " the mat."
    # resuming keeps the checkpoint's words (even with --tokens char on the command line)
    again = Trainer(
        structured, learner, _word_config(tokens="char", max_steps=302),
        out_dir=tmp_path / "run", resume=True,
    )  # fmt: skip
    assert again.corpus.vocab == loaded.vocab and again.step == 300
    again.close()


def test_old_char_checkpoints_load_as_character_models(tmp_path: Path) -> None:
    vocab = Vocab(sorted(set("abc \n")))
    save_checkpoint(tmp_path, model=tiny_model("gru", len(vocab)), vocab=vocab, meta={"step": 1})
    state_path = next(tmp_path.glob("step-*")) / "state.json"
    state = json.loads(state_path.read_text(encoding="utf-8"))
    assert "tokenizer" not in state  # a char checkpoint is written as before
    loaded = load_checkpoint(tmp_path)
    assert type(loaded.vocab) is Vocab and loaded.vocab.kind == "char"
    # a vocabulary of words without a word tokenizer is damage, said in one line
    state["vocab"][0] = "ab"
    state_path.write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path)
    assert_one_line(info.value, "single characters")
    assert isinstance(vocab_from_state(["a", "b", "ab"], {"kind": "word"}), WordVocab)
    with pytest.raises(ValueError):
        vocab_from_state(["a"], {"kind": "bytes"})
    with pytest.raises(ValueError):  # a word spelled with characters that are no tokens
        vocab_from_state(["a", "b", "xy"], {"kind": "word"})


async def test_the_worker_evaluates_a_word_checkpoint_per_character(
    structured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARLM_DATA_DIR", str(tmp_path / "data"))
    from engine.worker import protocol as p
    from engine.worker.client import EngineClient
    from tests.engine.test_worker import Events

    trainer = Trainer(
        structured, tiny_config("gru", dropout=0.0), _word_config(max_steps=20),
        out_dir=tmp_path / "run",
    )  # fmt: skip
    result = trainer.run()
    client = EngineClient("thread")
    await client.start()
    events = Events(client)
    try:
        client.send(p.LoadCorpus(str(structured.files[0]), req=1))
        await events.until(lambda e: isinstance(e, p.CorpusLoaded))
        client.send(p.LoadCheckpoint(str(tmp_path / "run"), req=2))
        loaded = await events.until(lambda e: isinstance(e, p.CheckpointLoaded))
        client.send(p.Evaluate(req=3))
        evaluated = await events.until(lambda e: isinstance(e, p.Evaluated) and e.req == 3)
    finally:
        await client.stop()
    assert loaded.vocab_matches_corpus  # its characters are the corpus's
    assert evaluated.chars == result.val_chars == len(structured.split(0.1)[1]) - 1
    assert evaluated.loss == pytest.approx(result.val_loss, rel=1e-5)
