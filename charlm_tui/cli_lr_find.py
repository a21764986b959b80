"""`charlm-tui lr-find`: a learning-rate range test on a fresh model; writes nothing."""

from __future__ import annotations

import math

import typer

from charlm_tui.cli_common import emit_json, stderr, user_errors

BAR_WIDTH = 40


def _curve_lines(lrs: list[float], smoothed: list[float], rows: int = 12) -> list[str]:
    """A plain-text plot of the smoothed loss against log lr (one line per sampled point)."""
    if not lrs:
        return []
    low, high = min(smoothed), max(smoothed)
    span = max(high - low, 1e-9)
    picks = sorted({round(i * (len(lrs) - 1) / max(rows - 1, 1)) for i in range(rows)})
    lines = []
    for i in picks:
        filled = round((smoothed[i] - low) / span * BAR_WIDTH)
        lines.append(f"  lr {lrs[i]:9.2e}  loss {smoothed[i]:7.4f}  {'#' * max(filled, 1)}")
    return lines


def lr_find_command(
    corpus: str = typer.Option(..., "--corpus", help="Sample name, text file or directory."),
    model: str = typer.Option("lstm", "--model", help="lstm, gru, rnn or transformer."),
    preset: str | None = typer.Option(
        None, "--preset", help="tiny, notebook (old name: seed), cpu or gpu."
    ),
    min_lr: float = typer.Option(1e-5, "--min-lr", help="The rate the sweep starts at."),
    max_lr: float = typer.Option(1.0, "--max-lr", help="The rate the sweep ends at."),
    steps: int = typer.Option(
        100, "--steps", min=5, max=100_000, help="Steps of the sweep (at most)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32 or bf16."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (weights and batches)."),
    settings: list[str] = typer.Option(
        [], "--set", help="Override a setting: KEY=VALUE (repeatable)."
    ),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the corpus."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Sweep the learning rate exponentially on a fresh model and suggest one to train with."""
    from engine.training.lr_find import check_range

    check_range(min_lr, max_lr, steps)  # before torch loads: bad input answers at once

    from charlm_tui.cli_train import parse_settings
    from engine.data.corpus import load_corpus
    from engine.training.lr_find import lr_find
    from engine.training.request import TrainRequest, resolve_training

    loaded = load_corpus(corpus, encoding)
    values = {"fit_width": False, **parse_settings(settings)}  # the width probe is a run's
    values.update(device=device, precision=precision)
    if seed is not None:
        values["seed"] = seed
    # The model `train` would build with the same options (engine/training/request.py).
    resolution = resolve_training(TrainRequest(model, preset, values), loaded)
    if not json_out:
        for reason in resolution.reasons:
            stderr.print(reason, markup=False, soft_wrap=True)

    def show(step: int, lr: float, loss: float, smoothed: float) -> None:
        if not json_out and step % 10 == 0:
            stderr.print(f"step {step:>4}  lr {lr:.2e}  loss {loss:.4f}  smoothed {smoothed:.4f}")

    result = lr_find(
        loaded,
        resolution.model_config,
        resolution.config,
        min_lr=min_lr,
        max_lr=max_lr,
        steps=steps,
        on_point=show,
    )
    model = resolution.model_config.model_type
    payload = {"corpus": loaded.name, "model": model, "steps": len(result.lrs), **result.as_dict()}
    if json_out:
        emit_json(payload)
        return
    for line in _curve_lines(result.lrs, result.smoothed):
        stderr.print(line, markup=False)
    if result.suggestion is None or not math.isfinite(result.suggestion):
        typer.echo("no suggestion: the loss never settled (try a wider range or more steps)")
        return
    typer.echo(
        f"suggested lr {result.suggestion:.2e} (loss lowest at {result.min_loss_lr:.2e}, "
        f"steepest fall at {result.steepest:.2e}; {result.stopped_by}): "
        f"train with --set lr={result.suggestion:.2e}"
    )


def register(app: typer.Typer) -> None:
    app.command("lr-find")(user_errors(lr_find_command))
