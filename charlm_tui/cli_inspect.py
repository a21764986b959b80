"""`charlm-tui inspect`: look inside a checkpoint from the shell.

    inspect units       activations of units over a text (the most varying ones, or --unit)
    inspect find        units that track "inside a match of --pattern" (Pearson r)
    inspect attention   a Transformer's attention at --position, per layer and head
    inspect saliency    how much each earlier character mattered for --position
    inspect embeddings  the character map: PCA of the embeddings, cosine neighbours

The text is --text FILE (`-` reads stdin) or --corpus-excerpt N characters of the
held-out split of the training corpus; at most 20,000 characters (engine.inspect).
With --json, stdout is one JSON object with the numbers as lists; without it,
tables and unit strips go to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from charlm_tui.cli_common import checkpoint_paths, emit_json, user_errors
from charlm_tui.widgets.glyphs import visible
from charlm_tui.widgets.inspect_render import (
    diverging_colour,
    map_label,
    scale_of,
    scatter_grid,
    sparkline,
    strip_lines,
)

if TYPE_CHECKING:
    from engine.runs.checkpoint import Checkpoint

inspect_app = typer.Typer(
    help="Look inside a model: units, unit search, attention, saliency, the character map.",
    no_args_is_help=True,
)

stdout = Console(highlight=False, soft_wrap=True)

CHECKPOINT_OPTION = typer.Option(..., "--checkpoint", help="Run or checkpoint directory.")
TEXT_OPTION = typer.Option(None, "--text", help="Text file to inspect (- reads stdin).")
EXCERPT_OPTION = typer.Option(
    None, "--corpus-excerpt", help="Inspect N characters of the held-out split instead."
)
CORPUS_OPTION = typer.Option(
    None, "--corpus", help="Corpus for --corpus-excerpt (default: the checkpoint's own)."
)
OFFSET_OPTION = typer.Option(0, "--offset", help="Where the excerpt starts in the held-out split.")
DROP_OPTION = typer.Option(False, "--drop-unknown", help="Leave out characters the model lacks.")
DEVICE_OPTION = typer.Option("cpu", "--device", help="auto, cpu, cuda or mps.")
MAX_WIDTH = 1000
WIDTH_OPTION = typer.Option(
    80, "--width", min=1, max=MAX_WIDTH, help="Characters per line of a unit strip."
)
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object on stdout.")
POSITION_OPTION = typer.Option(
    -1, "--position", help="Character position (negative counts from the end)."
)


def _load(checkpoint: Path, device: str) -> Checkpoint:
    from engine.device import resolve_device
    from engine.runs.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint_paths([checkpoint])[0], resolve_device(device))


def _text(
    loaded: Checkpoint,
    text_file: str | None,
    excerpt: int | None,
    corpus: str | None,
    offset: int,
    drop_unknown: bool,
):
    """(text, ids) from --text or --corpus-excerpt (exactly one of them)."""
    from engine.errors import UserError
    from engine.files import read_text, user_path
    from engine.inspect import MAX_TEXT_CHARS, encode_text, held_out_excerpt
    from engine.inspect.text import training_corpus

    if (text_file is None) == (excerpt is None):
        raise UserError("give the text to inspect: --text FILE or --corpus-excerpt N (one)")
    if text_file is not None:
        if text_file == "-":
            try:
                raw = sys.stdin.read(MAX_TEXT_CHARS + 1)
            except UnicodeDecodeError:
                raise UserError("the text on stdin is not UTF-8") from None
        else:
            # A regular file only (a named pipe would block), at most 4 bytes a character.
            what = f"--text file (at most {MAX_TEXT_CHARS:,} characters)"
            raw = read_text(user_path(text_file), 4 * MAX_TEXT_CHARS, what)
        if len(raw) > MAX_TEXT_CHARS:
            raise UserError(
                f"{text_file} has more than {MAX_TEXT_CHARS:,} characters; inspect reads at most "
                f"{MAX_TEXT_CHARS:,} (cut it, or use --corpus-excerpt N)"
            )
    else:
        raw = held_out_excerpt(training_corpus(loaded.meta, corpus), excerpt, offset)
    return encode_text(loaded.vocab, raw, drop_unknown=drop_unknown)


def _position(position: int, length: int) -> int:
    from engine.errors import UserError

    resolved = position + length if position < 0 else position
    if not 0 <= resolved < length:
        raise UserError(f"--position {position} is outside the text ({length} characters)")
    return resolved


def _print_strip(text: str, values: list[float], width: int, title: str) -> None:
    """The text with a bar under every character (▁ most negative, █ most positive)."""
    scale = scale_of(values)
    low, high = min(values), max(values)
    stdout.print(
        Text(
            f"{title}  min {low:+.3f}  max {high:+.3f}  (bars: ▁ -{scale:.3f} .. █ +{scale:.3f})",
            style="bold",
        )
    )
    for shown, bars, offset in strip_lines(text, values, width):
        line = Text()
        for i, char in enumerate(shown):
            line.append(char, style=f"black on {diverging_colour(values[offset + i], scale)}")
        stdout.print(line)
        stdout.print(bars, markup=False)


# ----- units -----------------------------------------------------------------------------


def units(
    checkpoint: Path = CHECKPOINT_OPTION,
    text: str | None = TEXT_OPTION,
    corpus_excerpt: int | None = EXCERPT_OPTION,
    corpus: str | None = CORPUS_OPTION,
    offset: int = OFFSET_OPTION,
    unit: list[str] = typer.Option(
        [], "--unit", help="Unit label, e.g. L0.cell.37 (repeatable; default: the most varying)."
    ),
    top: int = typer.Option(3, "--top", help="Without --unit: how many of the most varying units."),
    width: int = WIDTH_OPTION,
    drop_unknown: bool = DROP_OPTION,
    device: str = DEVICE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Activations of units at every character (value after reading that character)."""
    import numpy as np

    from engine.errors import UserError
    from engine.inspect import unit_activations

    if top < 1:
        raise UserError(f"--top must be at least 1, got {top}")
    loaded = _load(checkpoint, device)
    chars, ids = _text(loaded, text, corpus_excerpt, corpus, offset, drop_unknown)
    acts = unit_activations(loaded.model, ids, chars)
    matrix = acts.matrix()
    labels = acts.labels()
    if unit:
        chosen = [acts.index_of(label) for label in unit]
    else:
        chosen = [int(i) for i in np.argsort(-matrix.std(axis=0), kind="stable")[:top]]
    rows = [
        {
            "unit": labels[i],
            "mean": float(matrix[:, i].mean()),
            "std": float(matrix[:, i].std()),
            "min": float(matrix[:, i].min()),
            "max": float(matrix[:, i].max()),
            "values": matrix[:, i].astype(float).tolist(),
        }
        for i in chosen
    ]
    groups = [
        {"name": g.name, "layer": g.layer, "kind": g.kind, "size": g.size} for g in acts.groups
    ]
    if json_out:
        emit_json(
            {
                "checkpoint": str(loaded.path),
                "model_type": loaded.model.config.model_type,
                "text": chars,
                "chars": len(chars),
                "groups": groups,
                "units": rows,
            }
        )
        return
    names = ", ".join(f"{g['name']} ({g['size']})" for g in groups)
    stdout.print(f"{loaded.model.config.model_type}, {acts.num_units} units: {names}", markup=False)
    for row in rows:
        stdout.print()
        _print_strip(chars, row["values"], width, row["unit"])
        stdout.print(f"sparkline {sparkline(row['values'], width)}", markup=False)


# ----- find ------------------------------------------------------------------------------


def find(
    checkpoint: Path = CHECKPOINT_OPTION,
    pattern: str = typer.Option(..., "--pattern", help=r'Regular expression, e.g. "[^"\n]*".'),
    text: str | None = TEXT_OPTION,
    corpus_excerpt: int | None = EXCERPT_OPTION,
    corpus: str | None = CORPUS_OPTION,
    offset: int = OFFSET_OPTION,
    top: int = typer.Option(10, "--top", help="How many units to list."),
    width: int = WIDTH_OPTION,
    drop_unknown: bool = DROP_OPTION,
    device: str = DEVICE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Units whose activation tracks "this character lies inside a match" (Pearson r)."""
    from engine.inspect import find_units, unit_activations

    loaded = _load(checkpoint, device)
    chars, ids = _text(loaded, text, corpus_excerpt, corpus, offset, drop_unknown)
    acts = unit_activations(loaded.model, ids, chars)
    result = find_units(acts, pattern, top)
    best = result.top[0]
    if json_out:
        emit_json(
            {
                "checkpoint": str(loaded.path),
                "model_type": loaded.model.config.model_type,
                **result.as_dict(),
                "best": {"unit": best.label, "r": best.r, "values": acts.unit(best.label).tolist()},
            }
        )
        return
    table = Table("unit", "r", title=f"units tracking {pattern!r}")
    for match in result.top:
        table.add_row(match.label, f"{match.r:+.3f}")
    stdout.print(table)
    stdout.print(f"{result.covered:,} of {result.chars:,} characters lie inside a match")
    _print_strip(chars, acts.unit(best.label).tolist(), width, f"{best.label} (r {best.r:+.3f})")


# ----- attention and saliency ------------------------------------------------------------


def attention(
    checkpoint: Path = CHECKPOINT_OPTION,
    text: str | None = TEXT_OPTION,
    corpus_excerpt: int | None = EXCERPT_OPTION,
    corpus: str | None = CORPUS_OPTION,
    offset: int = OFFSET_OPTION,
    position: int = POSITION_OPTION,
    show: int = typer.Option(5, "--show", min=1, help="Most attended characters listed per head."),
    drop_unknown: bool = DROP_OPTION,
    device: str = DEVICE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Attention weights of every head of every layer at one position (Transformer only)."""
    from engine.inspect import attention_at, require_transformer

    loaded = _load(checkpoint, device)
    require_transformer(loaded.model)
    chars, ids = _text(loaded, text, corpus_excerpt, corpus, offset, drop_unknown)
    where = _position(position, len(chars))
    amap = attention_at(loaded.model, ids, where)
    if json_out:
        emit_json(
            {
                "checkpoint": str(loaded.path),
                "char": chars[where],
                "window_text": chars[amap.start : where + 1],
                **amap.as_dict(),
            }
        )
        return
    table = Table("layer", "head", "most attended (position 'char' weight)")
    for layer, heads in enumerate(amap.weights):
        for head, row in enumerate(heads):
            best = sorted(range(len(row)), key=lambda j: -row[j])[:show]
            cells = [
                f"{amap.start + j} {visible(chars[amap.start + j])!r} {row[j]:.2f}" for j in best
            ]
            table.add_row(str(layer), str(head), ", ".join(cells))
    stdout.print(f"attention at position {where} ({visible(chars[where])!r}):", markup=False)
    stdout.print(table)


def saliency(
    checkpoint: Path = CHECKPOINT_OPTION,
    text: str | None = TEXT_OPTION,
    corpus_excerpt: int | None = EXCERPT_OPTION,
    corpus: str | None = CORPUS_OPTION,
    offset: int = OFFSET_OPTION,
    position: int = POSITION_OPTION,
    window: int = typer.Option(256, "--window", help="Earlier characters scored at most."),
    show: int = typer.Option(10, "--show", min=1, help="Most salient characters listed."),
    width: int = WIDTH_OPTION,
    drop_unknown: bool = DROP_OPTION,
    device: str = DEVICE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """How much each earlier character mattered for the one at --position (gradient x input)."""
    from engine.inspect import saliency_at

    loaded = _load(checkpoint, device)
    chars, ids = _text(loaded, text, corpus_excerpt, corpus, offset, drop_unknown)
    where = _position(position, len(chars))
    sal = saliency_at(loaded.model, ids, where, window)
    if json_out:
        emit_json(
            {
                "checkpoint": str(loaded.path),
                "char": chars[where],
                "window_text": chars[sal.start : where],
                **sal.as_dict(),
            }
        )
        return
    scores = sal.scores.tolist()
    stdout.print(
        f"saliency for {visible(chars[where])!r} at position {where} "
        f"(log p = {sal.logprob:.3f}; gradient x input, shares sum to 1):",
        markup=False,
    )
    table = Table("position", "char", "share")
    for j in sorted(range(len(scores)), key=lambda j: -scores[j])[:show]:
        table.add_row(str(sal.start + j), repr(visible(chars[sal.start + j])), f"{scores[j]:.3f}")
    stdout.print(table)
    _print_strip(chars[sal.start : where], scores, width, "share per character")


# ----- the character map ----------------------------------------------------------------


def embeddings(
    checkpoint: Path = CHECKPOINT_OPTION,
    char: str | None = typer.Option(
        None, "--char", help=r"Show this character's neighbours (\n ok)."
    ),
    neighbours: int = typer.Option(5, "--neighbours", help="Nearest neighbours per character."),
    device: str = DEVICE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """The input embeddings on their first two principal components, and cosine neighbours."""
    from engine.errors import UserError
    from engine.inspect import character_map

    if neighbours < 1:
        raise UserError(f"--neighbours must be at least 1, got {neighbours}")
    loaded = _load(checkpoint, device)
    cmap = character_map(loaded.model, loaded.vocab, neighbours)
    if char is not None:
        char = {"\\n": "\n", "\\t": "\t", "space": " "}.get(char, char)
        if char not in cmap.chars:
            raise UserError(f"{char!r} is not in the model's vocabulary")
    if json_out:
        payload = {"checkpoint": str(loaded.path), **cmap.as_dict()}
        if char is not None:
            payload["char"] = char
            payload["char_neighbours"] = [[n, s] for n, s in cmap.neighbours_of(char)]
        emit_json(payload)
        return
    explained = " + ".join(f"{v:.0%}" for v in cmap.explained)
    stdout.print(f"character map: PCA of the embeddings ({explained} of the variance)")
    for line in scatter_grid([map_label(c) for c in cmap.chars], cmap.points.tolist()):
        stdout.print("|" + line + "|", markup=False)
    shown = [char] if char is not None else cmap.chars
    table = Table("char", "nearest by cosine")
    for c in shown:
        near = ", ".join(f"{map_label(n)} {s:.2f}" for n, s in cmap.neighbours_of(c))
        table.add_row(map_label(c), near)
    stdout.print(table)


def register(app: typer.Typer) -> None:
    for name, command in (
        ("units", units),
        ("find", find),
        ("attention", attention),
        ("saliency", saliency),
        ("embeddings", embeddings),
    ):
        inspect_app.command(name)(user_errors(command))
    app.add_typer(inspect_app, name="inspect")
