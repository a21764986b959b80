"""The `charlm-tui` command: the TUI with no arguments, headless subcommands otherwise.

Heavy imports (torch, the engine, Textual) happen inside the commands, so
`charlm-tui --help` and the TUI's first paint stay fast.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path

import typer

try:  # recent Typer vendors its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - Typer releases that depend on click
    from click import exceptions as click_errors

from charlm_tui.cli_common import checkpoint_paths, emit_json, fail, stderr, stdout, user_errors

app = typer.Typer(
    name="charlm-tui",
    help="Train and play with character-level language models, in a terminal or headless.",
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
corpus_app = typer.Typer(help="List sample corpora and inspect any corpus.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object on stdout.")
ENCODING_OPTION = typer.Option("utf-8", "--encoding", help="Text encoding of the corpus files.")


@app.callback()
@user_errors
def root(
    ctx: typer.Context,
    corpus: str | None = typer.Option(None, "--corpus", help="Corpus to open the TUI on."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Checkpoint to load."),
    thread_engine: bool = typer.Option(
        False, "--thread-engine", help="Run the engine in a thread instead of a process."
    ),
) -> None:
    """With no subcommand, open the TUI."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        from charlm_tui.app import CharLMApp
    except ImportError as exc:  # pragma: no cover - only when the app is missing
        fail(f"the TUI is not available: {exc}")
    tui = CharLMApp(
        corpus=corpus,
        checkpoint=str(checkpoint_paths([checkpoint])[0]) if checkpoint else None,
        engine_mode="thread" if thread_engine else "process",
    )
    run_tui(tui)


def run_tui(tui) -> None:  # a textual App with an async action_quit (CharLMApp)
    """Run the app; SIGTERM, SIGHUP and SIGINT quit it as ctrl+q does.

    That is: a run in training is saved first (the engine, in the same process group,
    also saves on a closed terminal's SIGHUP by itself), then the app exits through
    Textual, which leaves the alternate screen, turns mouse reporting off and shows
    the cursor again. Signals after the first change nothing: the quit is under way.
    The handlers go through the event loop, so they run whichever thread the kernel
    interrupts. A closed terminal fails every write with EIO, which would end
    Textual's writer thread and then block the app's last writes forever: the app
    writes through `_HangupProof` instead. Exits 128 + the first signal's number.
    """
    import asyncio
    import signal

    async def run() -> None:
        loop = asyncio.get_running_loop()

        def on_signal(number: int) -> None:
            if not received:
                received.append(number)
                tui.call_later(tui.action_quit)

        for number in STOP_SIGNALS:
            loop.add_signal_handler(number, on_signal, number)
        try:
            await tui.run_async()
        finally:
            for number in STOP_SIGNALS:
                loop.remove_signal_handler(number)

    STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    received: list[int] = []
    terminal, sys.__stderr__ = sys.__stderr__, _HangupProof(sys.__stderr__)  # Textual's output
    try:
        asyncio.run(run())
    finally:
        sys.__stderr__ = terminal
    if received:
        raise typer.Exit(128 + received[0])


class _HangupProof:
    """A terminal stream whose writes never raise: once the terminal is gone they go nowhere."""

    def __init__(self, stream) -> None:  # a text stream (sys.__stderr__)
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):  # EIO from a hung-up terminal; a closed stream
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@corpus_app.command("list")
@user_errors
def corpus_list(json_out: bool = JSON_OPTION) -> None:
    """The sample corpora: shipped, downloadable and built on the fly (the table on stdout)."""
    from engine.data.samples import default_sample_name, list_samples

    samples = list_samples()
    rows = [
        {
            "name": s.name,
            "kind": s.kind,
            "description": s.description,
            "available_offline": s.available_offline,
            "default": s.name == default_sample_name(),
        }
        for s in samples
    ]
    if json_out:
        emit_json({"corpora": rows})
        return
    from rich.table import Table

    table = Table("name", "kind", "description", title="sample corpora")
    for row in rows:
        name = row["name"] + (" (default)" if row["default"] else "")
        kind = row["kind"] + ("" if row["available_offline"] else ", not downloaded yet")
        table.add_row(name, kind, row["description"])
    stdout.print(table)


@corpus_app.command("info")
@user_errors
def corpus_info(
    corpus: str = typer.Argument(..., help="A sample name, a text file or a directory."),
    encoding: str = ENCODING_OPTION,
    labels: bool = typer.Option(
        False,
        "--labels",
        help="Read it as labelled (a directory of labels, or label<TAB>text lines).",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Size, vocabulary, unigram entropy, most common characters and a preview."""
    from engine.data.corpus import load_corpus
    from engine.data.labels import label_sizes, load_labelled_corpus, looks_labelled

    if labels:
        loaded = load_labelled_corpus(corpus, encoding)
    else:
        with _download_progress() as on_download:
            loaded = load_corpus(corpus, encoding, download_progress=on_download)
    from engine.data.items import corpus_item_info

    info = {
        "name": loaded.name,
        **loaded.stats().as_dict(),
        "items": corpus_item_info(loaded.vocab.chars, loaded.ids),
    }
    if labels:
        from engine.data.label_balance import DEFAULT_LABEL_BALANCE, label_balance_info

        info["labels"] = label_sizes(loaded)
        info.update(label_balance_info(info["labels"], DEFAULT_LABEL_BALANCE))
    else:
        info["labelled_layout"] = looks_labelled(corpus)
    if json_out:
        emit_json(info)
        return
    stdout.print(
        f"[bold]{loaded.name}[/]: {info['chars']:,} chars, vocabulary {info['vocab_size']}, "
        f"unigram entropy {info['entropy_bits']:.3f} bits/char, {info['files']} file(s)"
    )
    if info["skipped_binary"] or info["skipped_undecodable"]:
        stderr.print(
            f"skipped {info['skipped_binary']} binary and "
            f"{info['skipped_undecodable']} undecodable files"
        )
    if info["items"]:
        items = info["items"]
        repeated = ", ".join(f"{item!r} x{n}" for item, n in items["most_duplicated"])
        stdout.print(
            f"line-per-item: {items['items']:,} items, {items['unique']:,} unique, "
            f"{items['duplicates']:,} duplicates{' (' + repeated + ')' if repeated else ''}; "
            f"mean length {items['mean_length']:.1f}, longest {items['max_length']}",
            markup=False,
        )
    if labels:
        sizes = ", ".join(f"{row['name']} ({row['chars']:,})" for row in info["labels"])
        stderr.print(f"labels: {sizes}", markup=False)
        stderr.print(
            info["label_balance_note"] + " (a conditional run's default; --label-balance)",
            markup=False,
        )
    common = "  ".join(f"{c!r}:{n:,}" for c, n in info["most_common"])
    stdout.print(f"most common: {common}")
    stdout.print("preview:")
    stdout.print(info["preview"][:300], markup=False)


class _download_progress:
    """A Rich progress bar for a corpus download, shown only if one happens."""

    def __enter__(self):
        self.progress = None
        self.task = None
        return self.update

    def update(self, done: int, total: int | None) -> None:
        from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

        if self.progress is None:
            self.progress = Progress(
                *Progress.get_default_columns(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=stderr,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("downloading", total=total)
        self.progress.update(self.task, completed=done, total=total)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False


def _register_subcommands() -> None:
    from charlm_tui import (
        cli_compare,
        cli_eval,
        cli_generate,
        cli_inspect,
        cli_lr_find,
        cli_runs,
        cli_train,
    )

    cli_train.register(app)
    cli_eval.register(app)
    cli_runs.register(app)
    cli_lr_find.register(app)
    cli_generate.register(app)
    cli_compare.register(app)
    cli_inspect.register(app)


_register_subcommands()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """The engine's warnings (a skipped cache) are one line for people; others as Python shows them."""
    from engine.errors import EngineWarning, first_line

    if issubclass(category, EngineWarning):
        sys.stderr.write(f"charlm-tui: warning: {first_line(message)}\n")
        return
    _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main() -> None:
    """Entry point: click's usage errors become one line and exit code 2."""
    warnings.showwarning = _show_warning
    try:
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        sys.stderr.write(exc.ctx.get_help() + "\n" if exc.ctx else "")
        code = 2
    except click_errors.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "charlm-tui"
        sys.stderr.write(f"charlm-tui: error: {exc.format_message()} (see `{command} --help`)\n")
        code = 2
    except typer.Abort:  # typer's vendored click has no exceptions.Abort
        sys.stderr.write("charlm-tui: interrupted\n")
        code = 130
    except click_errors.ClickException as exc:
        sys.stderr.write(f"charlm-tui: error: {exc.format_message()}\n")
        code = exc.exit_code
    sys.exit(code if isinstance(code, int) else 0)
