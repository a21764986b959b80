"""`charlm-tui generate`: headless generation from a checkpoint (or a blend of several)."""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from charlm_tui.cli_common import emit_json, pipe_may_close, stderr, user_errors
from charlm_tui.cli_decoding import (
    BLEND_OPTION,
    CHECKPOINT_OPTION,
    CONDITION_OPTION,
    DEVICE_OPTION,
    DROP_OPTION,
    GUIDANCE_OPTION,
    JSON_OPTION,
    MAX_ITEMS,
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
from engine.decoding.params import (
    MAX_BEAM_WIDTH,
    MAX_LENGTH,
    MAX_LENGTH_PENALTY,
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    STRATEGIES,
    SamplingParams,
)

if TYPE_CHECKING:
    from engine.decoding.generator import Generator
    from engine.decoding.loading import Decoder

# A streamed JSON chunk is flushed at least this often (seconds), so a reader sees
# text arrive smoothly without one line per character.
STREAM_FLUSH_S = 0.05


def generate(
    checkpoint: list[Path] = CHECKPOINT_OPTION,
    prompt: str = PROMPT_OPTION,
    prompt_file: Path | None = PROMPT_FILE_OPTION,
    length: int = typer.Option(
        200, "--length", help=f"Characters to generate per sample (0 to {MAX_LENGTH:,})."
    ),
    strategy: str = typer.Option(
        "sample", "--strategy", help=f"{', '.join(STRATEGIES[:-1])} or {STRATEGIES[-1]}."
    ),
    temperature: float = typer.Option(
        1.0,
        "--temperature",
        help=f"<= 0 means greedy; otherwise in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}].",
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
    beam_width: int = typer.Option(
        5, "--beam-width", help=f"Beams kept by beam search (1 to {MAX_BEAM_WIDTH})."
    ),
    length_penalty: float = typer.Option(
        1.0,
        "--length-penalty",
        help="Beam score = logprob / length**A, "
        f"A in [{-MAX_LENGTH_PENALTY:g}, {MAX_LENGTH_PENALTY:g}].",
    ),
    num_samples: int = typer.Option(
        1, "--num-samples", help=f"Samples, 1 to {MAX_SAMPLES:,} (best beams for beam)."
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
        None,
        "--items",
        min=1,
        max=MAX_ITEMS,
        help="Make N line-per-item items, one a line (the prompt starts each).",
    ),
    condition: str | None = CONDITION_OPTION,
    guidance: float | None = GUIDANCE_OPTION,
    weights: str | None = WEIGHTS_OPTION,
    blend: str = BLEND_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Continue a prompt; samples go to stdout (with --json: `samples`, `chars_per_s`)."""
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
    prompt = read_prompt(prompt, prompt_file, drop_unknown)
    if items is not None:
        decoder, generator = load_decoder(checkpoint, device, condition, guidance, weights, blend)
        _generate_items(decoder, generator, prompt, params, items, stream, drop_unknown, json_out)
        return
    if not 1 <= num_samples <= MAX_SAMPLES:
        raise ConfigError(f"--num-samples must be in [1, {MAX_SAMPLES:,}], got {num_samples}")
    if strategy == "beam" and num_samples > beam_width:
        raise ConfigError(
            f"beam search returns at most --beam-width ({beam_width}) samples, "
            f"{num_samples} were asked for"
        )
    decoder, generator = load_decoder(checkpoint, device, condition, guidance, weights, blend)
    check_prompt(generator, prompt, drop_unknown)
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
        **decoder_fields(decoder),
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
    if payload.get("model_note"):
        stderr.print(payload["model_note"], markup=False)


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
    check_prompt(generator, prompt, drop_unknown)
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
                **decoder_fields(decoder),
            }
        )
        return
    for item in made:
        sys.stdout.write(item + "\n")
    sys.stdout.flush()
    stderr.print(f"[dim]{count} items in {seconds:.2f}s, seed {params.seed}[/]")


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


def register(app: typer.Typer) -> None:
    app.command("generate")(user_errors(pipe_may_close(generate)))
