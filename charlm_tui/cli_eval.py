"""`charlm-tui eval`: a checkpoint's (or a blend's) loss on a corpus split, and text quality."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from charlm_tui.cli_common import checkpoint_paths, emit_json, stderr, task_progress, user_errors


def evaluate(
    checkpoint: list[Path] = typer.Option(
        ..., "--checkpoint", help="Run or checkpoint directory (repeat it to score a blend)."
    ),
    corpus: str = typer.Option(..., "--corpus", help="Sample name, text file or directory."),
    split: str = typer.Option(
        "auto",
        "--split",
        help="val, all, or auto (the held-out split of the training corpus, else all of it).",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the corpus."),
    quality: int | None = typer.Option(
        None, "--quality", help="Also continue N prompts of the split: chrF and BLEU (sacrebleu)."
    ),
    quality_length: int = typer.Option(
        64, "--quality-length", help="Characters of each prompt and of each continuation."
    ),
    labels: bool = typer.Option(
        False, "--labels", help="Read the corpus as labelled and report the loss per label."
    ),
    weights: str | None = typer.Option(None, "--weights", help="Blend weights, e.g. 0.7,0.3."),
    blend: str = typer.Option(
        "mixture", "--blend", help="mixture or product (geometric mean; floor 1e-6)."
    ),
    fit_weights: bool = typer.Option(
        False, "--fit-weights", help="Fit the mixture weights on the split (EM) and print them."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Score a checkpoint (or a blend) on a corpus: loss (nats/char), bits per char, perplexity.

    A conditional checkpoint reads the corpus as labelled and reports each label's
    loss with its true label and with no label.
    """
    from engine.decoding.blend import BLENDS, check_weights, parse_weights
    from engine.decoding.loading import load_checkpoints
    from engine.device import resolve_device
    from engine.errors import ConfigError

    if split not in ("auto", "val", "all"):
        raise ConfigError("--split must be auto, val or all")
    parsed = parse_weights(weights)
    check_weights(parsed, len(checkpoint))
    if blend not in BLENDS:
        raise ConfigError(f"--blend must be one of {', '.join(BLENDS)}, got '{blend}'")
    if fit_weights and (len(checkpoint) < 2 or blend != "mixture"):
        raise ConfigError("--fit-weights fits a mixture: give two or more --checkpoint")
    if quality is not None and len(checkpoint) > 1:
        raise ConfigError("--quality scores one model: give one --checkpoint")
    if quality is not None:
        if quality < 1:
            raise ConfigError(f"--quality needs at least 1 prompt, got {quality}")
        if quality_length < 1:
            raise ConfigError("--quality-length must be at least 1")
        from engine.decoding.quality import _sacrebleu

        _sacrebleu()  # missing extra: one line now, not after the evaluation
    torch_device = resolve_device(device)
    loaded = load_checkpoints(checkpoint_paths(checkpoint), torch_device)
    started = time.perf_counter()
    if len(loaded) > 1:
        from engine.decoding.loading import require_char_models

        require_char_models(loaded, "scoring a blend")
        payload, line = _evaluate_blend(
            loaded, corpus, encoding, split, parsed, blend, fit_weights, torch_device
        )
    else:
        payload, line, (text, ids) = _evaluate_one(
            loaded[0], corpus, encoding, split, labels, torch_device
        )
    payload["seconds"] = time.perf_counter() - started
    if quality is not None:
        payload["quality"] = _quality(loaded[0], text, ids, quality, quality_length, torch_device)
    if json_out:
        emit_json(payload)
        return
    stderr.print(line, markup=False)
    if payload.get("model_note"):
        stderr.print(payload["model_note"], markup=False)
    if quality is not None:
        scores = payload["quality"]
        stderr.print(
            f"chrF {scores['chrf']:.2f}, BLEU {scores['bleu']:.2f} on {scores['prompts']} "
            f"held-out prompts ({quality_length} chars in, {quality_length} out, greedy)"
        )


def _remap(text, vocab) -> object:  # (Corpus, Vocab) -> np.ndarray
    """Corpus ids -> model ids; characters the model never saw are a CorpusError."""
    import numpy as np

    from engine.errors import CorpusError

    missing = sorted(set(text.vocab.chars) - set(vocab.chars))
    if missing:
        raise CorpusError(
            f"the corpus has {len(missing)} characters the model never saw: "
            f"{''.join(missing)[:20]!r}"
        )
    return np.array([vocab.index[c] for c in text.vocab.chars], dtype=np.int64)


def _pick_split(loaded, text, split: str):  # -> (use_val, val_fraction)
    same_corpus = loaded.meta.get("corpus", {}).get("content_key") == text.content_key
    use_val = split == "val" or (split == "auto" and same_corpus)
    return use_val, float(loaded.train_config.get("val_fraction", 0.1))


def _need_two(count: int, corpus: str, where: str) -> None:
    """Scoring predicts each character from the ones before: it needs two at least."""
    from engine.errors import CorpusError
    from engine.files import show_path

    if count < 2:
        part = "the held-out split (val) of " if where == "val" else ""
        hint = ": try --split all" if where == "val" else ""
        raise CorpusError(
            f"{part}{show_path(corpus)} has {count} character{'s' * (count != 1)}: "
            f"scoring needs at least 2{hint}"
        )


def _summary(result, split: str) -> str:
    return (
        f"loss {result.loss:.4f} nats/char, {result.bpc:.3f} bits/char, "
        f"perplexity {result.perplexity:.2f} on {result.chars:,} chars ({split})"
    )


def _evaluate_one(loaded, corpus: str, encoding: str, split: str, labels: bool, device):
    """(payload, summary line, (corpus, the scored ids in its vocabulary) for --quality)."""
    import numpy as np

    from engine.data.labels import load_corpus_as
    from engine.training.evaluate import evaluate_split
    from engine.training.evaluate_labelled import evaluate_labelled

    conditional = bool(loaded.labels)
    if loaded.vocab.kind == "word":
        from charlm_tui.cli_words import evaluate_words

        return evaluate_words(loaded, corpus, encoding, split, labels, device)
    text = load_corpus_as(corpus, encoding, labels or conditional)
    remap = _remap(text, loaded.vocab)
    use_val, val_fraction = _pick_split(loaded, text, split)
    where = "val" if use_val else "all"
    base = {"split": where, "checkpoint": str(loaded.path), "step": loaded.step}
    from engine.training.best_model import best_note

    if note := best_note(Path(loaded.path)):  # the run's best, not its last: say so
        base["model_note"] = note
    if text.segments is None:
        ids = text.split(val_fraction)[1] if use_val else text.ids
        _need_two(len(ids), corpus, where)
        with task_progress(f"scoring {len(ids):,} chars") as progress:
            result = evaluate_split(loaded.model, remap[np.asarray(ids)], device, progress=progress)
        return {**result.as_dict(), **base}, _summary(result, where), (text, ids)
    if use_val:
        part = text.label_split(val_fraction)[1]
        raw, segments = part.ids, part.segments
    else:
        raw, segments = np.asarray(text.ids), text.segments
    _need_two(len(raw), corpus, where)
    ids = remap[np.asarray(raw)]

    def condition_of(label: int) -> int | None:
        name = text.labels[label]
        return loaded.labels.index(name) + 1 if name in loaded.labels else None

    plain, plain_rows = evaluate_labelled(
        loaded.model, ids, segments, text.labels, device, with_label=False
    )
    per_label = {
        name: {"loss_no_label": r.loss, "chars": r.chars} for name, r in plain_rows.items()
    }
    payload = {**plain.as_dict(), **base, "labels": list(text.labels), "per_label": per_label}
    line = _summary(plain, where)
    if conditional:
        true, true_rows = evaluate_labelled(
            loaded.model, ids, segments, text.labels, device, with_label=True,
            condition_of=condition_of,
        )  # fmt: skip
        for name, row in true_rows.items():
            per_label[name]["loss"] = row.loss if condition_of(text.labels.index(name)) else None
        payload.update(true.as_dict())
        payload["loss_no_label"] = plain.loss
        line = f"{_summary(true, where)} with the true label; {plain.loss:.4f} with no label"
    else:
        for name, row in plain_rows.items():
            per_label[name]["loss"] = row.loss
    line += "; per label: " + ", ".join(
        f"{name} {row['loss'] if row.get('loss') is not None else row['loss_no_label']:.4f}"
        for name, row in per_label.items()
    )
    return payload, line, (text, raw)


def _evaluate_blend(loaded, corpus, encoding, split, weights, blend, fit, device):
    import numpy as np

    from engine.data.corpus import load_corpus
    from engine.decoding.blend_eval import evaluate_blend

    text = load_corpus(corpus, encoding)
    use_val, val_fraction = _pick_split(loaded[0], text, split)
    where = "val" if use_val else "all"
    ids = text.split(val_fraction)[1] if use_val else text.ids
    _need_two(len(ids), corpus, where)
    result = evaluate_blend(
        loaded, np.asarray(ids), text.vocab, weights, blend, device, fit_steps=10 if fit else 0
    )
    payload = {
        **result.as_dict(),
        "split": where,
        "blend": blend,
        "checkpoints": [str(c.path) for c in loaded],
        "checkpoint": str(loaded[0].path),
    }
    members = ", ".join(f"{loss:.4f}" for loss in result.member_losses)
    weights_text = ", ".join(f"{w:.3f}" for w in result.weights)
    line = (
        f"{blend} loss {result.loss:.4f} nats/char ({result.loss / 0.6931471805599453:.3f} "
        f"bits/char) on {result.chars:,} chars ({where}); members {members}; "
        f"weights {weights_text}{' (fitted)' if fit else ''}"
    )
    return payload, line


def _quality(loaded, corpus, ids, count: int, length: int, device) -> dict:
    """chrF and BLEU of greedy continuations of `count` prompts cut from the scored split."""
    from engine.data.items import decode_ids
    from engine.decoding.generator import Generator
    from engine.decoding.quality import quality_eval

    text = decode_ids(corpus.vocab.chars, ids)
    generator = Generator(loaded.model, loaded.vocab, loaded.unigram, device)
    return quality_eval(generator, text, count, prompt_chars=length, length=length).as_dict()


def register(app: typer.Typer) -> None:
    app.command("eval")(user_errors(evaluate))
