"""Which tokens a run trains on: characters, or words (engine/data/words.py).

A new word run builds its vocabulary from the training split; a resumed one
keeps the vocabulary its checkpoint was trained with (whatever `--tokens` says),
so the ids mean what they meant.
"""

from __future__ import annotations

from pathlib import Path

from engine.config.train import TrainConfig
from engine.data.corpus import Corpus
from engine.data.words import WordCorpus, WordVocab, to_word_corpus, vocab_from_state, word_corpus
from engine.errors import UserError
from engine.runs.checkpoint import read_state, resolve_checkpoint_dir


def saved_vocab(run_dir: Path) -> object | None:
    """The vocabulary of a run's `last` checkpoint, or None where there is none (yet)."""
    try:
        state = read_state(resolve_checkpoint_dir(run_dir, "last"))
        return vocab_from_state(state["vocab"], state.get("tokenizer"))
    except (UserError, KeyError, TypeError, ValueError):
        return None  # the resume itself reports a damaged or missing checkpoint


def corpus_for_run(
    corpus: Corpus, config: TrainConfig, out_dir: Path | None, resume: bool
) -> Corpus:
    """`corpus` in the run's tokens; sets `config.tokens` to what the run trains on."""
    if isinstance(corpus, WordCorpus):
        config.tokens = "word"
        return corpus
    saved = saved_vocab(out_dir) if resume and out_dir is not None else None
    if isinstance(saved, WordVocab):
        config.tokens = "word"
        config.word_vocab = max(1, len(saved.words))
        return to_word_corpus(corpus, saved, config.val_fraction)
    if config.tokens == "word":
        return word_corpus(corpus, config.word_vocab, config.val_fraction)
    return corpus
