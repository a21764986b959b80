"""`eval` of a word-token checkpoint (engine/data/words.py): scored per character of text.

The corpus is split by characters exactly as for a character model, then the
scored side is tokenized with the checkpoint's own vocabulary, so the figures
compare with a character model's on the same text.
"""

from __future__ import annotations

from charlm_tui.cli_common import task_progress


def evaluate_words(loaded, corpus: str, encoding: str, split: str, labels: bool, device):
    """(payload, summary line, (char corpus, the scored char ids) for --quality)."""
    import numpy as np

    from engine.data.corpus import load_corpus
    from engine.data.items import decode_ids
    from engine.errors import ConfigError, CorpusError
    from engine.training.evaluate import evaluate_split

    if labels:
        raise ConfigError("--labels needs a character model: this checkpoint uses word tokens")
    text = load_corpus(corpus, encoding)
    same_corpus = loaded.meta.get("corpus", {}).get("content_key") == text.content_key
    use_val = split == "val" or (split == "auto" and same_corpus)
    val_fraction = float(loaded.train_config.get("val_fraction", 0.1))
    where = "val" if use_val else "all"
    char_ids = text.split(val_fraction)[1] if use_val else text.ids
    missing = sorted(set(text.vocab.chars) - set(loaded.vocab.chars[: loaded.vocab.char_count]))
    if missing:
        raise CorpusError(
            f"the corpus has {len(missing)} characters the model never saw: "
            f"{''.join(missing)[:20]!r}"
        )
    ids = loaded.vocab.encode(decode_ids(text.vocab.chars, np.asarray(char_ids)))
    if ids.size < 2:
        raise CorpusError(f"the {where} text is too short to score (fewer than two tokens)")
    with task_progress(f"scoring {ids.size:,} tokens") as progress:
        result = evaluate_split(
            loaded.model, ids, device, progress=progress, token_chars=loaded.vocab.token_lengths()
        )
    payload = {
        **result.as_dict(),
        "tokens": "word",
        "split": where,
        "checkpoint": str(loaded.path),
        "step": loaded.step,
    }
    line = (
        f"loss {result.loss:.4f} nats/char, {result.bpc:.3f} bits/char, "
        f"perplexity {result.perplexity:.2f} on {result.chars:,} chars ({where}); "
        f"word tokens: {result.loss_per_token:.4f} nats/token on {result.tokens_scored:,} tokens"
    )
    return payload, line, (text, char_ids)
