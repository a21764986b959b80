"""`charlm-tui compare`: one prompt under several strategies (or labels), with statistics."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from charlm_tui.cli_common import emit_json, pipe_may_close, stderr, task_progress, user_errors
from charlm_tui.cli_decoding import (
    BLEND_OPTION,
    CHECKPOINT_OPTION,
    CONDITION_OPTION,
    DEVICE_OPTION,
    DROP_OPTION,
    GUIDANCE_OPTION,
    JSON_OPTION,
    MAX_SAMPLES,
    PROMPT_FILE_OPTION,
    PROMPT_OPTION,
    SEED_OPTION,
    WEIGHTS_OPTION,
    check_prompt,
    decoder_fields,
    load_decoder,
    read_prompt,
    unescape,
)

if TYPE_CHECKING:
    from engine.decoding.loading import Decoder
    from engine.runs.checkpoint import Checkpoint


def compare(
    checkpoint: list[Path] = CHECKPOINT_OPTION,
    prompt: str = PROMPT_OPTION,
    prompt_file: Path | None = PROMPT_FILE_OPTION,
    length: int = typer.Option(200, "--length", help="Characters per sample."),
    num_samples: int | None = typer.Option(
        None,
        "--num-samples",
        help=f"Samples per strategy, 1 to {MAX_SAMPLES:,} (3; items models: 20 items).",
    ),
    seed: int | None = SEED_OPTION,
    corpus: str | None = typer.Option(
        None,
        "--corpus",
        help="Training corpus for novelty (default: the checkpoint's, if it is a sample).",
    ),
    items: bool | None = typer.Option(
        None, "--items/--no-items", help="Compare whole items (default: as the model trained)."
    ),
    reference: str | None = typer.Option(
        None, "--reference", help=r"The text that truly follows the prompt: adds chrF (\n escapes)."
    ),
    drop_unknown: bool = DROP_OPTION,
    device: str = DEVICE_OPTION,
    condition: str | None = CONDITION_OPTION,
    guidance: float | None = GUIDANCE_OPTION,
    weights: str | None = WEIGHTS_OPTION,
    blend: str = BLEND_OPTION,
    by_label: bool = typer.Option(
        False,
        "--by-label",
        help="Rows are the labels of a conditional model (sampled at temperature 1), "
        "not strategies.",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Greedy, temperatures, top-k, top-p, min-p and beam side by side, with statistics."""
    from engine.decoding.compare import STRATEGIES, compare_strategies
    from engine.decoding.params import SamplingParams
    from engine.errors import ConfigError

    SamplingParams(length=length, seed=seed)  # checks them before a model loads
    if reference is not None:
        from engine.decoding.quality import _sacrebleu

        _sacrebleu()
        reference = unescape(reference)
        if not reference:
            raise ConfigError("--reference is empty")
    if num_samples is not None and not 1 <= num_samples <= MAX_SAMPLES:
        raise ConfigError(f"--num-samples must be in [1, {MAX_SAMPLES:,}], got {num_samples}")
    prompt = read_prompt(prompt, prompt_file, drop_unknown)
    if seed is None:
        seed = secrets.randbelow(2**31)
    if by_label and condition is not None:
        raise ConfigError("--by-label makes one row per label: leave out --condition")
    decoder, generator = load_decoder(checkpoint, device, condition, guidance, weights, blend)
    check_prompt(generator, prompt, drop_unknown)
    if by_label and not decoder.labels:
        raise ConfigError("--by-label needs a model trained with --conditional")
    loaded = decoder.checkpoints[0]
    if items is None:
        items = bool(loaded.train_config.get("items"))
    if num_samples is None:
        num_samples = 20 if items else 3
    text = _training_corpus(corpus, loaded)
    words = _corpus_words(text)
    item_sets = _item_sets(text, loaded) if items else None
    if by_label:
        rows = _compare_labels(
            generator.device, guidance, decoder, prompt, length, num_samples, seed, words,
            drop_unknown,
        )  # fmt: skip
    else:
        with task_progress("comparing strategies") as progress:
            done: list[object] = []

            def on_row(row: object) -> None:
                done.append(row)
                progress(len(done), len(STRATEGIES))

            rows = compare_strategies(
                generator,
                prompt,
                length=length,
                num_samples=num_samples,
                seed=seed,
                corpus_words=words,
                items=items,
                item_sets=item_sets,
                reference=reference,
                drop_unknown=drop_unknown,
                on_row=on_row,
            )
    if json_out:
        emit_json(
            {
                "rows": [row.as_dict() for row in rows],
                "prompt": prompt,
                "length": length,
                "num_samples": num_samples,
                "seed": seed,
                "items": bool(items),
                **decoder_fields(decoder),
            }
        )
        return
    _print_table(rows, seed)


def _compare_labels(
    device: object,
    guidance: float | None,
    decoder: Decoder,
    prompt: str,
    length: int,
    num_samples: int,
    seed: int,
    words: frozenset[str] | None,
    drop_unknown: bool,
) -> list:
    """One compare row per label (and one with none), same strategy and seed in every row."""
    from engine.decoding.compare import compare_conditions
    from engine.decoding.generator import Generator
    from engine.decoding.loading import build_decoder
    from engine.errors import ConfigError

    if not decoder.labels:
        raise ConfigError("--by-label needs a model trained with --conditional")

    def generator_for(label: str) -> Generator:
        labelled = label != "none"
        built = build_decoder(
            decoder.checkpoints,
            condition=label if labelled else None,
            guidance=guidance if labelled else None,
            weights=decoder.weights,
            blend=decoder.blend,
        )
        return Generator(built.model, built.vocab, built.unigram, device)

    return compare_conditions(
        generator_for,
        ["none", *decoder.labels],
        prompt,
        length=length,
        num_samples=num_samples,
        seed=seed,
        corpus_words=words,
        drop_unknown=drop_unknown,
    )


def _training_corpus(spec: str | None, loaded: Checkpoint):  # -> Corpus | None
    """The training corpus: --corpus, else the checkpoint's own corpus when it is a sample
    or a file at hand with the very content trained on; None when neither can be had."""
    from engine.data.corpus import load_corpus
    from engine.data.samples import find_sample

    trained_on = loaded.meta.get("corpus", {})
    if spec is not None:
        text = load_corpus(spec)
    else:
        sample = find_sample(str(trained_on.get("name", "")))
        text = load_corpus(sample.name) if sample and sample.available_offline else None
        files = [f for f in trained_on.get("files", []) if Path(f).is_file()]
        if (text is None or text.content_key != trained_on.get("content_key")) and files:
            text = load_corpus(files[0])  # the very file it was trained on, if still there
        if text is None or text.content_key != trained_on.get("content_key"):
            stderr.print("[dim]novelty: give --corpus (the training corpus) to measure it[/]")
            return None
    return text


def _corpus_words(text: object) -> frozenset[str] | None:
    """Word set of the training corpus, for word novelty."""
    if text is None:
        return None
    from engine.decoding.textstats import corpus_word_set

    return corpus_word_set(text)  # type: ignore[arg-type]


def _item_sets(text: object, loaded: Checkpoint) -> tuple[frozenset[str], frozenset[str]] | None:
    """(training items, held-out items) by the split the checkpoint trained with."""
    if text is None:
        return None
    from engine.data.items import decode_ids, split_item_sets

    train, val = text.split(float(loaded.train_config.get("val_fraction", 0.1)))  # type: ignore[attr-defined]
    chars = text.vocab.chars  # type: ignore[attr-defined]
    return split_item_sets(decode_ids(chars, train), decode_ids(chars, val))


# (header, TextStats field, decimals): short headers so the table fits 80 columns.
TABLE_COLUMNS = (
    ("uniq", "unique_chars", 0),
    ("entropy", "entropy", 2),
    ("bigram", "bigram_diversity", 2),
    ("d-1", "distinct_1", 2),
    ("d-2", "distinct_2", 2),
    ("d-3", "distinct_3", 2),
    ("rep-4", "repetition_4", 2),
    ("logp", "mean_logprob", 2),
    ("ppl", "perplexity", 2),
    ("novel", "novelty", 2),
)


def _print_table(rows: list, seed: int) -> None:
    """The statistics as a Rich table on stderr, then each strategy's first sample."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"decoding strategies (seed {seed})",
        box=box.SIMPLE_HEAD,  # its blank column separators are all the spacing needed
        padding=(0, 0),
        pad_edge=False,
    )
    table.add_column("strategy", no_wrap=True)
    for header, _, _ in TABLE_COLUMNS:
        table.add_column(header, justify="right", no_wrap=True)
    with_items = any(row.item_novelty for row in rows)
    with_chrf = any(row.chrf is not None for row in rows)
    if with_chrf:
        table.add_column("chrF", justify="right", no_wrap=True)
    if with_items:
        table.add_column("new", justify="right", no_wrap=True)
        table.add_column("new-all", justify="right", no_wrap=True)
    for row in rows:
        cells = []
        for _, field, decimals in TABLE_COLUMNS:
            value = getattr(row.stats, field)
            cells.append("-" if value is None else f"{value:.{decimals}f}")
        if with_chrf:
            cells.append("-" if row.chrf is None else f"{row.chrf:.1f}")
        if with_items:
            for key in ("novel_vs_train", "novel_vs_all"):
                value = (row.item_novelty or {}).get(key)
                cells.append("-" if value is None else f"{value:.2f}")
        table.add_row(row.strategy, *cells)
    stderr.print(table)
    stderr.print(
        "[dim]entropy: nats/char; bigram: the seed's bigram diversity; d-n: distinct "
        "n-grams; rep-4: repeated 4-grams; logp: mean log-prob per char under the model; "
        "ppl: exp(-logp); novel: share of words not in the corpus[/]"
    )
    if with_items:
        stderr.print(
            "[dim]new: share of items not in the training items; new-all: in neither the "
            "training nor the held-out items[/]"
        )
    for row in rows:
        first = row.samples[0] if row.samples else ""
        stderr.print(f"[bold]{row.strategy}[/]: {first[:60]!r}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("compare")(user_errors(pipe_may_close(compare)))
