"""The schema of `state.json`, checked in full before anything is built from it.

A checkpoint directory may have been copied, edited or damaged: every field that
the engine reads later (the step, the corpus record, the history, the character
counts, the model's sizes) is checked here for type and range, with the same
checks (engine.validation) that guard flags and knobs. A model whose parameters
would not fit in memory is refused here, before a single weight is allocated.
"""

from __future__ import annotations

from engine.config.train import MAX_STEPS, TrainConfig
from engine.errors import ConfigError
from engine.validation import (
    check_choice,
    check_dict,
    check_int,
    check_list,
    check_number,
    check_str,
    is_number,
)

MAX_VOCAB = 0x110000
MAX_HISTORY = 1_000_000
MAX_GROUPS = 64
MAX_TOKEN_CHARS = 1024
MAX_SAVED_AT = 253402300799.0  # 9999-12-31: a date Python can still print


def _optional_number(name: str, value: object) -> None:
    """A metric: a number (NaN and inf are possible results) or null."""
    if value is not None and not is_number(value):
        raise ConfigError(f"{name} must be a number or null, got {value!r}")


def _check_vocab(value: object, tokenizer: object) -> list[str]:
    """Single characters; with a word tokenizer, its characters and then its words."""
    words = isinstance(tokenizer, dict) and tokenizer.get("kind") == "word"
    if tokenizer is not None:
        check_dict("tokenizer", tokenizer)
        check_choice("tokenizer kind", tokenizer.get("kind"), ("char", "word"))
    chars = check_list("vocab", value, MAX_VOCAB)
    for char in chars:
        if not isinstance(char, str) or not char or (len(char) != 1 and not words):
            raise ConfigError(f"vocab must list single characters, got {char!r}")
        if len(char) > MAX_TOKEN_CHARS:
            raise ConfigError(f"a vocabulary token is longer than {MAX_TOKEN_CHARS} characters")
    if len(set(chars)) != len(chars):
        raise ConfigError("vocab lists a character twice")
    return chars


def _check_history(value: object) -> None:
    for entry in check_list("history", value, MAX_HISTORY):
        check_dict("a history entry", entry)
        check_int("history step", entry.get("step"), 0, MAX_STEPS)
        for key, item in entry.items():
            if isinstance(item, bool) or item is None:
                continue
            if not is_number(item):
                raise ConfigError(f"history {key} must be a number, got {item!r}")


def _check_corpus(value: object) -> None:
    corpus = check_dict("corpus", value)
    if "name" in corpus:
        check_str("corpus name", corpus["name"])
    if "content_key" in corpus and corpus["content_key"] is not None:
        check_str("corpus content_key", corpus["content_key"])
    if "chars" in corpus:
        check_int("corpus chars", corpus["chars"], 0)
    for path in check_list("corpus files", corpus.get("files", []), 100_000):
        check_str("a corpus file", path)


def check_listing(state: dict) -> None:
    """The fields a run list reads (step, history, model type, corpus, best loss, save
    time), checked without torch: `runs list` and the app's run list use this."""
    check_str("model_type", check_dict("model", state.get("model")).get("model_type"))
    check_int("step", state.get("step", 0), 0, MAX_STEPS)
    _check_history(state.get("history", []))
    _optional_number("best_val_loss", state.get("best_val_loss"))
    check_number("saved_at", state.get("saved_at", 0.0), 0.0, MAX_SAVED_AT)
    if "corpus" in state:
        _check_corpus(state["corpus"])


def check_state(state: dict) -> None:
    """Raise ConfigError (one line) for the first field of `state` that is wrong."""
    from engine.models import check_fits, config_from_dict  # torch: only for a full check

    model = check_dict("model", state.get("model"))
    config = config_from_dict(model)
    vocab = _check_vocab(state.get("vocab"), state.get("tokenizer"))
    if config.vocab_size != len(vocab):
        raise ConfigError(
            f"the model has {config.vocab_size} outputs but the vocabulary {len(vocab)} characters"
        )
    check_fits(config)
    check_int("step", state.get("step", 0), 0, MAX_STEPS)
    check_int("tokens", state.get("tokens", 0), 0)
    check_int("world_size", state.get("world_size", 1), 1, 1 << 16)
    if "train" in state:
        TrainConfig.from_dict(check_dict("train", state["train"])).validate()
    _check_history(state.get("history", []))
    _optional_number("best_val_loss", state.get("best_val_loss"))
    check_number("train_seconds", state.get("train_seconds", 0.0), 0.0)
    check_number("schedule_progress", state.get("schedule_progress", 0.0), 0.0, 1.0)
    for group in check_list("optimizer_groups", state.get("optimizer_groups", []), MAX_GROUPS):
        check_dict("an optimizer group", group)
    data = check_dict("data", state.get("data", {}))
    check_int("data position", data.get("position", 0), 0)
    if "corpus" in state:
        _check_corpus(state["corpus"])
    counts = state.get("char_counts")
    if counts is not None:
        check_list("char_counts", counts, MAX_VOCAB)
        if len(counts) != len(vocab):
            raise ConfigError("char_counts does not match the vocabulary")
        for count in counts:
            check_int("a char count", count, 0)
    final = state.get("final_val")
    if final is not None:
        for key, item in check_dict("final_val", final).items():
            _optional_number(f"final_val {key}", item)
