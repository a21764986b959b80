"""`charlm-tui generate` and `charlm-tui compare`: headless generation from a checkpoint."""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from charlm_tui.cli_common import emit_json, stderr, task_progress, user_errors

if TYPE_CHECKING:
    from engine.decoding.generator import Generator
    from engine.decoding.loading import Decoder
    from engine.decoding.params import SamplingParams
    from engine.training.checkpoint import Checkpoint

# A streamed JSON chunk is flushed at least this often (seconds), so a reader sees
# text arrive smoothly without one line per character.
STREAM_FLUSH_S = 0.05
MAX_SAMPLES = 1024
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "0": "\0"}

CHECKPOINT_OPTION = typer.Option(
    ..., "--checkpoint", help="Run or checkpoint directory (repeat it to blend several models)."
)
CONDITION_OPTION = typer.Option(
    None,
    "--condition",
    help="A label of a conditional model, or a blend of labels: a=0.7,b=0.3.",
)
GUIDANCE_OPTION = typer.Option(
    None, "--guidance", help="Classifier-free guidance scale (1: plain conditioning)."
)
WEIGHTS_OPTION = typer.Option(None, "--weights", help="Blend weights, e.g. 0.7,0.3.")
BLEND_OPTION = typer.Option(
    "mixture",
    "--blend",
    help="mixture (average of probabilities) or product (geometric mean; floor 1e-6).",
)

PROMPT_OPTION = typer.Option(
    "", "--prompt", help="Text to continue; empty starts from a random corpus character."
)
PROMPT_FILE_OPTION = typer.Option(
    None,
    "--prompt-file",
    help="Read the prompt from this UTF-8 file ('-': standard input); for prompts longer "
    "than a command line holds (Linux caps one argument at 128 KiB).",
)
DEVICE_OPTION = typer.Option("auto", "--device", help="auto, cpu, cuda or mps.")
SEED_OPTION = typer.Option(None, "--seed", help="Random seed (same seed, same text).")
DROP_OPTION = typer.Option(
    False, "--drop-unknown", help="Drop prompt characters the model does not know."
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON on stdout.")


def unescape(text: str) -> str:
    r"""Backslash escapes \n \t \r \\ \0 as typed in a shell (`--stop '\n\n'`)."""
    out = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append(ESCAPES.get(following, "\\" + following))
        else:
            out.append(char)
    return "".join(out)


def _load(
    checkpoints: list[Path],
    device: str,
    condition: str | None = None,
    guidance: float | None = None,
    weights: str | None = None,
    blend: str = "mixture",
) -> tuple[Decoder, Generator]:
    """The decoder for these options, every option checked before any checkpoint loads."""
    from engine.decoding.blend import BLENDS, check_weights, parse_weights
    from engine.decoding.generator import Generator
    from engine.decoding.loading import build_decoder, check_guidance, load_checkpoints
    from engine.device import resolve_device
    from engine.errors import ConfigError

    parsed = parse_weights(weights)
    check_weights(parsed, len(checkpoints))
    check_guidance(condition, guidance)
    if blend not in BLENDS:
        raise ConfigError(f"--blend must be one of {', '.join(BLENDS)}, got '{blend}'")
    torch_device = resolve_device(device)
    loaded = load_checkpoints(checkpoints, torch_device)
    decoder = build_decoder(
        loaded, condition=condition, guidance=guidance, weights=parsed, blend=blend
    )
    generator = Generator(decoder.model, decoder.vocab, decoder.unigram, torch_device)
    return decoder, generator


def _read_prompt(prompt: str, prompt_file: Path | None, drop_unknown: bool) -> str:
    """The prompt from --prompt or --prompt-file, as valid text.

    Bytes that are not UTF-8 (an argument arrives with them as lone surrogates) are
    unknown characters: dropped with --drop-unknown, otherwise one line says where.
    """
    from engine.errors import ConfigError, CorpusError

    if prompt_file is not None:
        if prompt:
            raise ConfigError("give --prompt or --prompt-file, not both")
        try:
            raw = sys.stdin.buffer.read() if str(prompt_file) == "-" else prompt_file.read_bytes()
        except OSError as exc:
            raise CorpusError(
                f"cannot read the prompt file {prompt_file} ({exc.strerror})"
            ) from None
        prompt = raw.decode("utf-8", "surrogateescape")
    bad = next((i for i, c in enumerate(prompt) if "\ud800" <= c <= "\udfff"), None)
    if bad is None:
        return prompt
    if drop_unknown:
        return "".join(c for c in prompt if not "\ud800" <= c <= "\udfff")
    raise CorpusError(
        f"the prompt is not valid UTF-8 (at character {bad}): fix its encoding, "
        "or use --drop-unknown to leave those bytes out"
    )


def _check_prompt(generator: Generator, prompt: str, drop_unknown: bool) -> None:
    """Fail before generating when the prompt has characters the model never saw."""
    from engine.errors import CorpusError

    missing = generator.vocab.missing(prompt)
    if missing and not drop_unknown:
        shown = "".join(missing)[:20]
        raise CorpusError(
            f"the prompt has characters the model does not know: {shown!r} "
            "(use --drop-unknown to leave them out)"
        )


def generate(
    checkpoint: list[Path] = CHECKPOINT_OPTION,
    prompt: str = PROMPT_OPTION,
    prompt_file: Path | None = PROMPT_FILE_OPTION,
    length: int = typer.Option(
        200, "--length", help="Characters to generate per sample (0 to 1,000,000)."
    ),
    strategy: str = typer.Option("sample", "--strategy", help="greedy, sample or beam."),
    temperature: float = typer.Option(
        1.0, "--temperature", help="<= 0 means greedy; otherwise in [0.0001, 100]."
    ),
    top_k: int | None = typer.Option(None, "--top-k", help="Keep the k most likely (0: off)."),
    top_p: float | None = typer.Option(None, "--top-p", help="Nucleus mass in (0, 1]."),
    min_p: float | None = typer.Option(None, "--min-p", help="Keep p >= min_p * p_max."),
    repetition_penalty: float = typer.Option(
        1.0, "--repetition-penalty", help="CTRL penalty on recent characters (1: off)."
    ),
    repetition_window: int = typer.Option(
        64, "--repetition-window", help="How many recent characters the penalty looks at."
    ),
    beam_width: int = typer.Option(5, "--beam-width", help="Beams kept by beam search (1 to 256)."),
    length_penalty: float = typer.Option(
        1.0, "--length-penalty", help="Beam score = logprob / length**A, A in [-10, 10]."
    ),
    num_samples: int = typer.Option(
        1, "--num-samples", help="Samples, 1 to 1,024 (best beams for beam)."
    ),
    seed: int | None = SEED_OPTION,
    stop: list[str] = typer.Option(
        [], "--stop", help=r"Stop after this string, e.g. '\n\n' (repeatable; \n \t escapes)."
    ),
    drop_unknown: bool = DROP_OPTION,
    device: str = DEVICE_OPTION,
    stream: bool = typer.Option(
        False, "--stream", help="Print characters as they come (sample i uses seed + i)."
    ),
    items: int | None = typer.Option(
        None, "--items", help="Make N line-per-item items, one a line (the prompt starts each)."
    ),
    condition: str | None = CONDITION_OPTION,
    guidance: float | None = GUIDANCE_OPTION,
    weights: str | None = WEIGHTS_OPTION,
    blend: str = BLEND_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Continue a prompt; samples go to stdout (with --json: `samples`, `chars_per_s`)."""
    from engine.decoding.params import SamplingParams
    from engine.errors import ConfigError

    if seed is None:
        seed = secrets.randbelow(2**31)  # reported, so any run can be repeated
    params = SamplingParams(
        strategy=strategy,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        repetition_penalty=repetition_penalty,
        repetition_window=repetition_window,
        beam_width=beam_width,
        length_penalty=length_penalty,
        length=length,
        seed=seed,
        stop=tuple(unescape(s) for s in stop),
    )
    params.validate()
    prompt = _read_prompt(prompt, prompt_file, drop_unknown)
    if items is not None:
        decoder, generator = _load(checkpoint, device, condition, guidance, weights, blend)
        _generate_items(decoder, generator, prompt, params, items, stream, drop_unknown, json_out)
        return
    if not 1 <= num_samples <= MAX_SAMPLES:
        raise ConfigError(f"--num-samples must be in [1, {MAX_SAMPLES:,}], got {num_samples}")
    if strategy == "beam" and num_samples > beam_width:
        raise ConfigError(
            f"beam search returns at most --beam-width ({beam_width}) samples, "
            f"{num_samples} were asked for"
        )
    decoder, generator = _load(checkpoint, device, condition, guidance, weights, blend)
    _check_prompt(generator, prompt, drop_unknown)
    started = time.perf_counter()
    if stream:
        samples = _stream(generator, prompt, params, num_samples, drop_unknown, json_out)
    else:
        samples = generator.generate(prompt, params, num_samples, drop_unknown=drop_unknown)
    seconds = time.perf_counter() - started
    chars = sum(len(s) for s in samples)
    payload = {
        "samples": samples,
        "chars_per_s": chars / seconds if seconds > 0 else 0.0,
        "seconds": seconds,
        "chars": chars,
        "prompt": prompt,
        "num_samples": num_samples,
        "params": params.as_dict(),
        **_decoder_fields(decoder),
    }
    if json_out:
        emit_json({"event": "done", **payload} if stream else payload)
        return
    if not stream:
        for index, sample in enumerate(samples):
            _print_plain(prompt, sample, index, len(samples))
    stderr.print(
        f"[dim]{chars:,} chars in {seconds:.2f}s ({payload['chars_per_s']:,.0f} chars/s), "
        f"seed {seed}[/]"
    )


def _generate_items(
    decoder: Decoder,
    generator: Generator,
    prompt: str,
    params: SamplingParams,
    count: int,
    stream: bool,
    drop_unknown: bool,
    json_out: bool,
) -> None:
    """`generate --items N`: N items, one per line on stdout (JSON: `items`)."""
    from engine.decoding.items import generate_items
    from engine.errors import ConfigError

    if count < 1:
        raise ConfigError(f"--items must be at least 1, got {count}")
    if stream:
        raise ConfigError("--items prints whole items: leave out --stream")
    if params.strategy == "beam" and count > params.beam_width:
        raise ConfigError(
            f"beam search returns at most --beam-width ({params.beam_width}) items, "
            f"{count} were asked for"
        )
    _check_prompt(generator, prompt, drop_unknown)
    started = time.perf_counter()
    made = generate_items(generator, count, params, prompt, drop_unknown=drop_unknown)
    seconds = time.perf_counter() - started
    if json_out:
        emit_json(
            {
                "items": made,
                "samples": made,
                "seconds": seconds,
                "prompt": prompt,
                "params": params.as_dict(),
                **_decoder_fields(decoder),
            }
        )
        return
    for item in made:
        sys.stdout.write(item + "\n")
    sys.stdout.flush()
    stderr.print(f"[dim]{count} items in {seconds:.2f}s, seed {params.seed}[/]")


def _decoder_fields(decoder: Decoder) -> dict:
    """What a JSON result says about the model: checkpoint(s), blend, condition."""
    fields: dict = {"checkpoint": str(decoder.checkpoints[0].path)}
    if len(decoder.checkpoints) > 1:
        fields["checkpoints"] = [str(c.path) for c in decoder.checkpoints]
        fields["weights"] = decoder.weights
        fields["blend"] = decoder.blend
    if decoder.condition is not None:
        fields["condition"] = decoder.condition
        fields["guidance"] = decoder.guidance
    return fields


def _print_plain(prompt: str, sample: str, index: int, count: int) -> None:
    """Prompt on stderr (for the eye), continuation on stdout (for pipes)."""
    if count > 1:
        stderr.print(f"[dim]--- sample {index + 1}/{count} ---[/]")
    sys.stderr.write(prompt)
    sys.stderr.flush()
    sys.stdout.write(sample + "\n")
    sys.stdout.flush()


def _stream(
    generator: Generator,
    prompt: str,
    params: SamplingParams,
    num_samples: int,
    drop_unknown: bool,
    json_out: bool,
) -> list[str]:
    """Samples one after another, printed as they are made (see _sample_chars)."""
    samples = []
    chunks = _sample_chars(generator, prompt, params, num_samples, drop_unknown)
    for index, chars in enumerate(chunks):
        if not json_out:
            if num_samples > 1:
                stderr.print(f"[dim]--- sample {index + 1}/{num_samples} ---[/]")
            sys.stderr.write(prompt)
            sys.stderr.flush()
        text: list[str] = []
        pending: list[str] = []
        last_flush = time.perf_counter()
        for char in chars:
            text.append(char)
            if not json_out:
                sys.stdout.write(char)
                sys.stdout.flush()
                continue
            pending.append(char)
            if time.perf_counter() - last_flush >= STREAM_FLUSH_S:
                emit_json({"event": "chunk", "sample": index, "text": "".join(pending)})
                pending, last_flush = [], time.perf_counter()
        if json_out and pending:
            emit_json({"event": "chunk", "sample": index, "text": "".join(pending)})
        if not json_out:
            sys.stdout.write("\n")
            sys.stdout.flush()
        samples.append("".join(text))
    return samples


def _sample_chars(
    generator: Generator,
    prompt: str,
    params: SamplingParams,
    num_samples: int,
    drop_unknown: bool,
) -> Iterator[Iterable[str]]:
    """Each sample's characters as they are made (sample i uses seed + i); beam search
    knows its beams only at the end, so they come whole."""
    from dataclasses import replace

    if params.strategy == "beam":
        yield from generator.generate(prompt, params, num_samples, drop_unknown=drop_unknown)
        return
    for index in range(num_samples):
        sample_params = replace(params, seed=(params.seed or 0) + index)
        tokens = generator.stream(prompt, sample_params, drop_unknown=drop_unknown)
        yield (token.char for token in tokens)


def compare(
    checkpoint: list[Path] = CHECKPOINT_OPTION,
    prompt: str = PROMPT_OPTION,
    prompt_file: Path | None = PROMPT_FILE_OPTION,
    length: int = typer.Option(200, "--length", help="Characters per sample."),
    num_samples: int | None = typer.Option(
        None,
        "--num-samples",
        help="Samples per strategy, 1 to 1,024 (3; items models: 20 items).",
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

    SamplingParams(length=length, seed=seed).validate()
    if reference is not None:
        from engine.decoding.quality import _sacrebleu

        _sacrebleu()
        reference = unescape(reference)
        if not reference:
            raise ConfigError("--reference is empty")
    if num_samples is not None and not 1 <= num_samples <= MAX_SAMPLES:
        raise ConfigError(f"--num-samples must be in [1, {MAX_SAMPLES:,}], got {num_samples}")
    prompt = _read_prompt(prompt, prompt_file, drop_unknown)
    if seed is None:
        seed = secrets.randbelow(2**31)
    if by_label and condition is not None:
        raise ConfigError("--by-label makes one row per label: leave out --condition")
    decoder, generator = _load(checkpoint, device, condition, guidance, weights, blend)
    _check_prompt(generator, prompt, drop_unknown)
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
                **_decoder_fields(decoder),
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
    app.command("generate")(user_errors(generate))
    app.command("compare")(user_errors(compare))
