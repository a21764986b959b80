"""`charlm-tui train` and `charlm-tui eval`."""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from pathlib import Path

import typer

from charlm_tui.cli_common import emit_json, stderr, task_progress, user_errors

# A time budget covers the whole command, from the moment the process started.
COMMAND_STARTED = time.monotonic()
# Where the process start cannot be read (not Linux): the interpreter's own start-up.
INTERPRETER_STARTUP_S = 0.7


def process_started() -> float:
    """time.monotonic() when this process started: /proc on Linux, else an estimate.

    The interpreter and its imports before this module (typer, rich) take from a
    fraction of a second to several on a busy machine, and they are part of the command.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    ours = (spec is not None and spec.name == "charlm_tui.__main__") or Path(
        sys.argv[0]
    ).name.startswith("charlm-tui")
    if not ours:  # called inside another program (tests): the command starts now
        return COMMAND_STARTED - INTERPRETER_STARTUP_S
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


def _apply_settings(settings: list[str], model: dict, train: dict, model_type: str) -> None:
    from dataclasses import fields

    from engine.errors import ConfigError
    from engine.models import MODELS
    from engine.training.config import TrainConfig

    model_fields = {f.name for f in fields(MODELS[model_type][0])} - {"vocab_size"}
    train_fields = {f.name for f in fields(TrainConfig)}
    for item in settings:
        if "=" not in item:
            raise ConfigError(f"--set takes KEY=VALUE, got '{item}'")
        key, raw = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key in model_fields:
            model[key] = _parse_value(raw)
        elif key in train_fields:
            train[key] = _parse_value(raw)
        else:
            raise ConfigError(f"unknown setting '{key}' for a {model_type} model or its training")


class _TrainDisplay:
    """Progress on stderr: a live Rich bar in a terminal, a line per evaluation otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.progress = None
        self.task = None
        self.val = ""
        self.said = ""

    def __enter__(self) -> _TrainDisplay:
        if not self.quiet and stderr.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=stderr,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=1.0, info="starting")
        return self

    def __call__(self, event: object) -> None:
        kind = getattr(event, "kind", "")
        if kind == "step" and self.progress is not None:
            info = (
                f"step {event.step}  loss {event.loss:.3f}  "
                f"{event.chars_per_s / 1000:.1f}k chars/s{self.val}"
            )
            self.progress.update(self.task, completed=event.progress, info=info)
        elif kind == "eval":
            self.val = f"  val {event.val_loss:.3f}"
            if self.progress is None and not self.quiet:
                train = f"train {event.train_loss:.4f}  " if event.train_loss is not None else ""
                left = getattr(event, "evals_left", None)
                patience = "" if left is None else f", {left} evaluations left"
                stderr.print(
                    f"step {event.step:>6}  {train}val {event.val_loss:.4f} "
                    f"({event.val_bpc:.3f} bpc, {event.val_chars} chars{patience})"
                )
        elif kind == "status" and event.message and not self.quiet:
            # The precision label comes with every "training" status (the TUI shows it
            # there); here once is enough.
            line = f"precision {event.message}" if event.state == "training" else event.message
            if line != self.said:
                stderr.print(line)
                self.said = line

    def __exit__(self, *exc: object) -> bool:
        if self.progress is not None:
            self.progress.stop()
        return False


def _decide_items(config: object, corpus: object, items: bool | None) -> None:
    """--items, --no-items, or (neither) whatever detection says, said on stderr."""
    from engine.data.items import corpus_is_items, require_newline

    if items is None and config.conditional:  # type: ignore[attr-defined]
        items = False  # windows of a conditional run keep to a label, not to items
    if items is None:
        items = corpus_is_items(corpus.vocab.chars, corpus.ids)  # type: ignore[attr-defined]
        if items:
            stderr.print("line-per-item corpus detected: windows start at items (--no-items: off)")
    if items:
        require_newline(corpus.vocab.chars, corpus.name)  # type: ignore[attr-defined]
        if config.batching != "random":  # type: ignore[attr-defined]
            stderr.print("items train on windows that start at items: random batching")
            config.batching = "random"  # type: ignore[attr-defined]
    config.items = bool(items)  # type: ignore[attr-defined]
    config.validate()  # type: ignore[attr-defined]


def train(
    corpus: str = typer.Option(..., "--corpus", help="Sample name, text file or directory."),
    out: Path = typer.Option(..., "--out", help="Run directory for checkpoints (last, best)."),
    model: str = typer.Option("lstm", "--model", help="lstm, gru, rnn or transformer."),
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
    from engine.errors import ConfigError

    if tokens is not None and tokens not in ("char", "word"):
        raise ConfigError(f"--tokens must be char or word, got '{tokens}'")
    if word_vocab is not None:
        if tokens != "word":
            raise ConfigError("--word-vocab sizes a word vocabulary: use it with --tokens word")
        from engine.data.words import check_word_count

        check_word_count(word_vocab)

    if time_budget is not None and not (time_budget > 0 and math.isfinite(time_budget)):
        raise ConfigError("--time-budget must be a positive number of seconds")
    if max_steps is not None and max_steps < 0:
        raise ConfigError("--max-steps must not be negative")
    if tensorboard is not None:
        from charlm_tui.cli_tensorboard import require_tensorboard

        require_tensorboard()
    if patience is not None and patience < 1:
        raise ConfigError(
            "--patience must be at least 1 (evaluations without a new best before stopping)"
        )

    from engine.data.labels import load_corpus_as
    from engine.device import resolve_device
    from engine.models import MODEL_TYPES, make_config
    from engine.training.config import TrainConfig
    from engine.training.presets import default_preset
    from engine.training.presets import preset as get_preset
    from engine.training.trainer import Trainer

    if model not in MODEL_TYPES:
        raise ConfigError(f"unknown model '{model}': choose one of {', '.join(MODEL_TYPES)}")
    resolved_device = resolve_device(device)
    model_settings, train_settings = get_preset(
        model, preset or default_preset(resolved_device.type)
    )
    explicit_batching = "batching" in train_settings and any(
        item.split("=", 1)[0].strip().replace("-", "_") == "batching" for item in settings
    )
    _apply_settings(settings, model_settings, train_settings, model)
    train_settings.update(device=device, precision=precision, compile=compile_model)
    if conditional:
        if not explicit_batching:  # a preset's stateful streams would run across labels
            train_settings["batching"] = "random"
        train_settings.update(conditional=True, label_dropout=label_dropout)
    if seed is not None:
        train_settings["seed"] = seed
    if time_budget is not None:
        train_settings["time_budget"] = time_budget
        if max_steps is None:
            train_settings["max_steps"] = None
    if max_steps is not None:
        train_settings["max_steps"] = max_steps
    if patience is not None:
        train_settings["patience"] = patience
    if tokens is not None:
        train_settings["tokens"] = tokens
    if word_vocab is not None:
        train_settings["word_vocab"] = word_vocab
    config = TrainConfig.from_dict(train_settings)
    config.validate()
    model_config = make_config(model, **model_settings)

    deadline = None
    if time_budget is not None:
        deadline = process_started() + time_budget

    from engine.training.ddp import launched_by_torchrun

    if ddp or launched_by_torchrun():
        from engine.training.launch import run_distributed

        board = None
        if tensorboard is not None:
            from engine.decoding.preview import preview_text
            from engine.training.tensorboard_log import TensorBoardRequest

            board = TensorBoardRequest(tensorboard, preview_text)
        result = run_distributed(
            corpus, encoding, model_config, config, out, resume, deadline, tensorboard=board
        )
        if result is None:  # not rank 0
            return
    else:
        loaded = load_corpus_as(corpus, encoding, conditional)
        if loaded.skipped_binary or loaded.skipped_undecodable:
            stderr.print(
                f"skipped {loaded.skipped_binary} binary and {loaded.skipped_undecodable} "
                f"undecodable files in {corpus} (see `charlm-tui corpus info`)",
                markup=False,
            )
        _decide_items(config, loaded, items)
        with _TrainDisplay(quiet=False) as display:
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
            previous = signal.getsignal(signal.SIGINT)

            def interrupt(signum: int, frame: object) -> None:
                # First Ctrl-C: stop after this step and save; a second one aborts.
                trainer.config.final_eval = False
                trainer.stop()
                signal.signal(signal.SIGINT, previous)

            signal.signal(signal.SIGINT, interrupt)
            try:
                result = trainer.run()
            finally:
                signal.signal(signal.SIGINT, previous)
                if close_tensorboard is not None:
                    close_tensorboard()
    payload = result.as_dict()
    if json_out:
        emit_json(payload)
    else:
        stderr.print(
            f"val_loss {result.val_loss:.4f} nats/char ({result.val_bpc:.3f} bpc, "
            f"perplexity {result.val_perplexity:.2f}) on {result.val_chars:,} chars"
            + (
                f" of {result.val_split_chars:,} (time budget: partial evaluation); "
                if result.partial_eval
                else " (the whole held-out split); "
            )
            + f"{result.steps} steps in {result.elapsed_s:.1f}s, "
            f"{result.chars_per_s:,.0f} chars/s in {result.precision} ({result.precision_reason}); "
            f"checkpoint {result.checkpoint}"
        )
        if result.tokens == "word" and result.val_loss_per_token is not None:
            stderr.print(
                f"word tokens ({result.vocab_size:,} in the vocabulary): "
                f"{result.val_loss_per_token:.4f} nats/token on {result.val_tokens:,} tokens; "
                "the losses above are per character of text"
            )
        if result.stopped_by == "early_stop":
            stderr.print(
                f"stopped early: no new best in {config.patience} evaluations; "
                f"the best (val {result.best_val_loss:.4f}) is kept as {out / 'best'}"
            )
    if result.stopped_by == "stop":
        raise typer.Exit(130)


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
    loaded = load_checkpoints(checkpoint, torch_device)
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


def _summary(result, split: str) -> str:
    return (
        f"loss {result.loss:.4f} nats/char, {result.bpc:.3f} bits/char, "
        f"perplexity {result.perplexity:.2f} on {result.chars:,} chars ({split})"
    )


def _evaluate_one(loaded, corpus: str, encoding: str, split: str, labels: bool, device):
    """(payload, summary line, (corpus, the scored ids in its vocabulary) for --quality)."""
    import numpy as np

    from engine.data.labels import load_corpus_as
    from engine.training.evaluate import evaluate_labelled, evaluate_split

    conditional = bool(loaded.labels)
    if loaded.vocab.kind == "word":
        from charlm_tui.cli_words import evaluate_words

        return evaluate_words(loaded, corpus, encoding, split, labels, device)
    text = load_corpus_as(corpus, encoding, labels or conditional)
    remap = _remap(text, loaded.vocab)
    use_val, val_fraction = _pick_split(loaded, text, split)
    where = "val" if use_val else "all"
    base = {"split": where, "checkpoint": str(loaded.path), "step": loaded.step}
    if text.segments is None:
        ids = text.split(val_fraction)[1] if use_val else text.ids
        with task_progress(f"scoring {len(ids):,} chars") as progress:
            result = evaluate_split(loaded.model, remap[np.asarray(ids)], device, progress=progress)
        return {**result.as_dict(), **base}, _summary(result, where), (text, ids)
    if use_val:
        part = text.label_split(val_fraction)[1]
        raw, segments = part.ids, part.segments
    else:
        raw, segments = np.asarray(text.ids), text.segments
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
    app.command("train")(user_errors(train))
    app.command("eval")(user_errors(evaluate))
