"""What `generate` and `compare` share: their options, the decoder they load, the prompt.

Every option is checked before any checkpoint loads (bad input is one line, and
costs no torch import), and the prompt is read as text that the model can read.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from engine.decoding.generator import Generator
    from engine.decoding.loading import Decoder

MAX_SAMPLES = 1024
MAX_ITEMS = 10_000  # generate --items: rows of one batch
MAX_PROMPT_BYTES = 4 << 20  # --prompt-file: far past argv's 128 KiB, far below memory
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
    help="Read the prompt from this UTF-8 file ('-': standard input), a regular file of at "
    f"most {MAX_PROMPT_BYTES >> 20} MB; for prompts longer than a command line holds (Linux caps one argument "
    "at 128 KiB).",
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


def load_decoder(
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
    from engine.runs.listing import checkpoint_spec

    parsed = parse_weights(weights)
    check_weights(parsed, len(checkpoints))
    check_guidance(condition, guidance)
    if blend not in BLENDS:
        raise ConfigError(f"--blend must be one of {', '.join(BLENDS)}, got '{blend}'")
    torch_device = resolve_device(device)
    loaded = load_checkpoints([checkpoint_spec(c) for c in checkpoints], torch_device)
    decoder = build_decoder(
        loaded, condition=condition, guidance=guidance, weights=parsed, blend=blend
    )
    generator = Generator(decoder.model, decoder.vocab, decoder.unigram, torch_device)
    return decoder, generator


def read_prompt(prompt: str, prompt_file: Path | None, drop_unknown: bool) -> str:
    """The prompt from --prompt or --prompt-file, as valid text.

    Bytes that are not UTF-8 (an argument arrives with them as lone surrogates) are
    unknown characters: dropped with --drop-unknown, otherwise one line says where.
    """
    from engine.errors import ConfigError, CorpusError

    if prompt_file is not None:
        if prompt:
            raise ConfigError("give --prompt or --prompt-file, not both")
        prompt = _prompt_file_text(prompt_file)
    bad = next((i for i, c in enumerate(prompt) if "\ud800" <= c <= "\udfff"), None)
    if bad is None:
        return prompt
    if drop_unknown:
        return "".join(c for c in prompt if not "\ud800" <= c <= "\udfff")
    raise CorpusError(
        f"the prompt is not valid UTF-8 (at character {bad}): fix its encoding, "
        "or use --drop-unknown to leave those bytes out"
    )


def _prompt_file_text(prompt_file: Path) -> str:
    """A regular file (or stdin) of at most MAX_PROMPT_BYTES, never a pipe that blocks."""
    from engine.errors import CorpusError
    from engine.files import read_bytes

    cap = f"at most {MAX_PROMPT_BYTES / (1 << 20):.1f} MB"
    if str(prompt_file) == "-":
        try:
            raw = sys.stdin.buffer.read(MAX_PROMPT_BYTES + 1)
        except OSError as exc:
            raise CorpusError(f"cannot read the prompt from stdin ({exc.strerror})") from None
        if len(raw) > MAX_PROMPT_BYTES:
            raise CorpusError(f"the prompt on stdin is too long ({cap})")
    else:
        raw = read_bytes(prompt_file, MAX_PROMPT_BYTES, "prompt file", CorpusError)
    return raw.decode("utf-8", "surrogateescape")


def check_prompt(generator: Generator, prompt: str, drop_unknown: bool) -> None:
    """Fail before generating when the prompt has characters the model never saw."""
    from engine.errors import CorpusError

    missing = generator.vocab.missing(prompt)
    if missing and not drop_unknown:
        shown = "".join(missing)[:20]
        raise CorpusError(
            f"the prompt has characters the model does not know: {shown!r} "
            "(use --drop-unknown to leave them out)"
        )


def decoder_fields(decoder: Decoder) -> dict:
    """What a JSON result says about the model: checkpoint(s), blend, condition."""
    fields: dict = {"checkpoint": str(decoder.checkpoints[0].path)}
    from pathlib import Path

    from engine.training.best_model import best_note

    if len(decoder.checkpoints) == 1 and (note := best_note(Path(decoder.checkpoints[0].path))):
        fields["model_note"] = note  # the run's best, not its last weights
    if len(decoder.checkpoints) > 1:
        fields["checkpoints"] = [str(c.path) for c in decoder.checkpoints]
        fields["weights"] = decoder.weights
        fields["blend"] = decoder.blend
    if decoder.condition is not None:
        fields["condition"] = decoder.condition
        fields["guidance"] = decoder.guidance
    return fields
