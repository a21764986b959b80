"""`charlm-tui train` (`eval` is in cli_eval.py; what train prints, in cli_train_display.py)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import typer

from charlm_tui.cli_common import emit_json, stderr, user_errors
from charlm_tui.cli_train_display import TrainDisplay, print_result

# A time budget covers the whole command, from the moment the process started.
COMMAND_STARTED = time.monotonic()
# Where the process start cannot be read (not Linux): the interpreter's own start-up.
INTERPRETER_STARTUP_S = 0.7


def command_started(entered: float) -> float:
    """time.monotonic() when this command started: the process's start (/proc on Linux,
    else an estimate) when the process is charlm-tui, else `entered`.

    The interpreter and its imports before this module (typer, rich) take from a
    fraction of a second to several on a busy machine, and they are part of the command.
    Called inside another program (tests, scripts), the command starts when `train` is
    entered: this module's import time may be minutes earlier.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    # sys.orig_argv is what started the process (a caller may have set sys.argv).
    script = sys.orig_argv[1] if len(sys.orig_argv) > 1 else ""
    ours = (spec is not None and spec.name == "charlm_tui.__main__") or Path(
        script
    ).name.startswith("charlm-tui")
    if not ours:
        return entered
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            after_name = handle.read().rsplit(")", 1)[1].split()
        started_ticks = int(after_name[19])  # field 22, starttime, in clock ticks after boot
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
        age = uptime - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return COMMAND_STARTED - INTERPRETER_STARTUP_S
    if not 0.0 <= age < 60.0:  # clocks that disagree: fall back to the estimate
        return COMMAND_STARTED - INTERPRETER_STARTUP_S
    return time.monotonic() - age


def _parse_value(raw: str) -> object:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


# `--set` keys that have an option of their own, which would silently win over them.
OWN_OPTION = {
    "device": "--device",
    "precision": "--precision",
    "compile": "--compile",
    "items": "--items/--no-items",
    "conditional": "--conditional",
    "label_dropout": "--label-dropout",
}


def parse_settings(settings: list[str]) -> dict:
    """`--set KEY=VALUE` items as one flat dict (engine/training/request.py sorts them)."""
    from engine.errors import ConfigError

    values: dict = {}
    for item in settings:
        if "=" not in item:
            raise ConfigError(f"--set takes KEY=VALUE, got '{item}'")
        key, raw = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key in OWN_OPTION:
            raise ConfigError(f"--set {key} is not read: use {OWN_OPTION[key]} instead")
        values[key] = _parse_value(raw)
    return values


def _check_options(
    tokens: str | None,
    word_vocab: int | None,
    time_budget: float | None,
    max_steps: int | None,
    patience: int | None,
    tensorboard: Path | None,
) -> None:
    from engine.errors import ConfigError

    if tokens is not None and tokens not in ("char", "word"):
        raise ConfigError(f"--tokens must be char or word, got '{tokens}'")
    if word_vocab is not None:
        if tokens != "word":
            raise ConfigError("--word-vocab sizes a word vocabulary: use it with --tokens word")
        from engine.data.words import check_word_count

        check_word_count(word_vocab)
    if time_budget is not None:
        from engine.config.train import MAX_TIME_BUDGET_S

        if not (0 < time_budget <= MAX_TIME_BUDGET_S):  # NaN fails both comparisons
            raise ConfigError(
                f"--time-budget must be a positive number of seconds, at most "
                f"{MAX_TIME_BUDGET_S:,} (about {MAX_TIME_BUDGET_S // 86400} days), got {time_budget:g}"
            )
    if max_steps is not None and max_steps < 0:
        raise ConfigError("--max-steps must not be negative")
    if tensorboard is not None:
        from charlm_tui.cli_tensorboard import require_tensorboard

        require_tensorboard()
    if patience is not None and patience < 1:
        raise ConfigError(
            "--patience must be at least 1 (evaluations without a new best before stopping)"
        )


def train(
    corpus: str = typer.Option(..., "--corpus", help="Sample name, text file or directory."),
    out_text: str = typer.Option(..., "--out", help="Run directory for checkpoints (last, best)."),
    model: str | None = typer.Option(None, "--model", help="lstm, gru, rnn or transformer."),
    preset: str | None = typer.Option(
        None, "--preset", help="tiny, notebook (old name: seed), cpu or gpu."
    ),
    time_budget: float | None = typer.Option(
        None, "--time-budget", help="Seconds for the whole command."
    ),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after this many steps."),
    patience: int | None = typer.Option(
        None, "--patience", help="Stop after N evaluations without a new best val loss."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32 or bf16."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (weights and batches)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Replace a run already in --out; with --resume, continue one that cannot "
        "resume exactly (no trainer state, or the corpus text changed).",
    ),
    compile_model: bool = typer.Option(False, "--compile", help="Use torch.compile."),
    settings: list[str] = typer.Option(
        [],
        "--set",
        help="Override a setting: KEY=VALUE (repeatable). Bounds: batch_size and seq_len "
        "1..65,536 with batch_size x seq_len <= 16,777,216; lr finite and > 0; "
        "val_fraction in (0, 1); model sizes (hidden_size, n_embd, ...) <= 65,536, "
        "layers <= 1,024, and the model must fit in memory.",
    ),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the corpus."),
    ddp: bool = typer.Option(False, "--ddp", help="Train with DistributedDataParallel (torchrun)."),
    items: bool | None = typer.Option(
        None,
        "--items/--no-items",
        help="One item per line: windows start at items (default: detected).",
    ),
    tensorboard: Path | None = typer.Option(
        None, "--tensorboard", help="Also write TensorBoard event files to this directory."
    ),
    conditional: bool = typer.Option(
        False,
        "--conditional",
        help="Learn one embedding per label of a labelled corpus (a directory of labels, "
        "or label<TAB>text lines).",
    ),
    label_dropout: float = typer.Option(
        0.1, "--label-dropout", help="Share of windows trained with no label (conditional)."
    ),
    label_balance: float | None = typer.Option(
        None,
        "--label-balance",
        help="Conditional: labels are trained on with p ~ size^ALPHA; 1 natural, 0 uniform "
        "(default 0.5).",
    ),
    tokens: str | None = typer.Option(
        None,
        "--tokens",
        help="char (default) or word: the top --word-vocab words of the training split, "
        "every character as fallback; losses stay per character of text.",
    ),
    word_vocab: int | None = typer.Option(
        None, "--word-vocab", help="Words in a word vocabulary (with --tokens word; 2000)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Train a model; prints val_loss (nats/char on the held-out split), steps, speed."""
    entered = time.monotonic()
    from engine.errors import ConfigError

    # Options checked before torch loads: bad input answers at once.
    _check_options(tokens, word_vocab, time_budget, max_steps, patience, tensorboard)
    from engine.data.labels import load_corpus_as
    from engine.training.request import (
        TrainRequest,
        check_out_dir,
        resolve_training,
        saved_run_state,
    )
    from engine.training.trainer import Trainer

    out = check_out_dir(out_text)
    saved = saved_run_state(out) if resume else None
    labelled = conditional or bool(saved and saved["train"].get("conditional"))
    loaded = load_corpus_as(corpus, encoding, labelled)
    if loaded.skipped_binary or loaded.skipped_undecodable:
        stderr.print(
            f"skipped {loaded.skipped_binary} binary and {loaded.skipped_undecodable} "
            f"undecodable files in {corpus} (see `charlm-tui corpus info`)",
            markup=False,
        )
    values = parse_settings(settings)
    values.update(device=device, precision=precision, compile=compile_model)
    flags = {
        "seed": seed,
        "time_budget": time_budget,
        "max_steps": max_steps,
        "patience": patience,
        "tokens": tokens,
        "word_vocab": word_vocab,
        "items": items,
    }
    values.update({key: value for key, value in flags.items() if value is not None})
    if time_budget is not None and max_steps is None:
        values["max_steps"] = None  # the budget, not the preset's steps, ends the run
    if conditional:
        values.update(conditional=True, label_dropout=label_dropout)
        if label_balance is not None:
            values["label_balance"] = label_balance
    elif label_balance is not None:
        raise ConfigError("--label-balance weighs the labels of a --conditional run")
    request = TrainRequest(model, preset, values, resume=saved, out_dir=out_text)
    resolution = resolve_training(request, loaded)  # every refusal comes before the run dir
    config, model_config = resolution.config, resolution.model_config

    deadline = None
    if time_budget is not None:
        deadline = command_started(entered) + time_budget

    from engine.machine.ddp import launched_by_torchrun

    if ddp or launched_by_torchrun():
        from engine.training.launch import run_distributed

        board = None
        if tensorboard is not None:
            from engine.decoding.preview import preview_text
            from engine.runs.tensorboard_log import TensorBoardRequest

            board = TensorBoardRequest(tensorboard, preview_text)
        TrainDisplay(quiet=False, reasons=resolution.reasons).say_reasons()
        result = run_distributed(
            corpus, encoding, model_config, config, out, resume, deadline, tensorboard=board
        )
        if result is None:  # not rank 0
            return
    else:
        with TrainDisplay(quiet=False, reasons=resolution.reasons) as display:
            on_event, close_tensorboard = display, None
            if tensorboard is not None:
                from charlm_tui.cli_tensorboard import tensorboard_observer

                board, close_tensorboard = tensorboard_observer(tensorboard, lambda: trainer)

                def on_event(event: object) -> None:
                    display(event)
                    board(event)

            trainer = Trainer(
                loaded,
                model_config,
                config,
                out_dir=out,
                on_event=on_event,
                resume=resume,
                force=force,
                deadline=deadline,
            )
            from engine.training.launch import StopOnSignals

            # Ctrl-C, SIGTERM or SIGHUP: stop after this step and save there (no final
            # evaluation); a second Ctrl-C aborts (engine/training/launch.py).
            try:
                with StopOnSignals(trainer) as stopper:
                    result = trainer.run()
                result.stop_signal = stopper.signal_name
            finally:
                if close_tensorboard is not None:
                    close_tensorboard()
    payload = result.as_dict()
    if json_out:
        emit_json(payload)
    else:
        print_result(result, out)
    if result.stopped_by == "stop":  # 128 + the signal's number, as a shell reports it
        raise typer.Exit(128 + signal.Signals[result.stop_signal or "SIGINT"])


def register(app: typer.Typer) -> None:
    app.command("train")(user_errors(train))
