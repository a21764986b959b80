"""`charlm-tui runs list | show RUN | export RUN --csv FILE`: saved runs without torch."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from charlm_tui.cli_common import emit_json, stderr, user_errors

runs_app = typer.Typer(help="List saved runs, show one, export its metrics.", no_args_is_help=True)

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object on stdout.")


def _fmt(value: object, spec: str = ".4f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


@runs_app.command("list")
@user_errors
def runs_list(
    directory: Path | None = typer.Option(
        None, "--dir", help="Where to look (default: the TUI's runs directory)."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Saved runs, newest first: corpus, model, steps, best val loss, date."""
    from engine.errors import ConfigError
    from engine.files import show_path
    from engine.runs.listing import list_runs, runs_dir

    root = directory or runs_dir()
    if directory is not None and not directory.is_dir():
        raise ConfigError(f"{show_path(directory)}: not a directory")
    runs = list_runs(root, limit=None)
    if json_out:
        emit_json({"runs_dir": str(root), "runs": runs})
        return
    if not runs:
        stderr.print(f"no saved runs in {show_path(root)}", markup=False)
        return
    headers = ["name", "corpus", "model", "steps", "best val", "date"]
    damaged = any(run["damaged"] for run in runs)
    rows = [
        [
            run["name"],
            run["corpus"],
            run["model_type"],
            "-" if run["step"] is None else str(run["step"]),
            _fmt(run["best_val_loss"]),
            (run["date"] or "-").replace("T", " ")[:19],
            *([f"damaged: {run['damaged']}" if run["damaged"] else ""] if damaged else []),
        ]
        for run in runs
    ]
    if damaged:
        headers.append("note")
    rows = [[show_path(cell) for cell in row] for row in rows]
    if not sys.stdout.isatty():  # piped: whole names, one run per line
        _print_plain(headers, rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=show_path(root), title_justify="left")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console(highlight=False).print(table, markup=False)  # the list the user asked for: stdout


def _print_plain(headers: list[str], rows: list[list[str]]) -> None:
    """Columns padded to their widest cell, nothing cut (for pipes and files)."""
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
    for row in (headers, *rows):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        sys.stdout.write(line.rstrip() + "\n")
    sys.stdout.flush()


@runs_app.command("show")
@user_errors
def runs_show(
    run: str = typer.Argument(..., help="A run directory or the name of a saved run."),
    json_out: bool = JSON_OPTION,
) -> None:
    """One run: settings, every evaluation and the final figures."""
    from engine.files import show_path
    from engine.runs.listing import show_run

    info = show_run(run)
    if json_out:
        emit_json(info)
        return
    out = typer.echo
    out(f"{show_path(info['name'])}  ({show_path(info['run_dir'])})")
    if info["damaged"]:
        out(f"damaged: {info['damaged']}")
    else:
        out(
            f"corpus {show_path(info['corpus'])}, model {info['model_type']}, "
            f"step {info['step']}, best val {_fmt(info['best_val_loss'])} nats/char, "
            f"saved {info['date'] or '-'}"
        )
    out(f"logged steps {info['logged_steps']}, evaluations {len(info['evaluations'])}")
    for record in info["evaluations"]:
        mark = " *" if record.get("best") else ""
        out(
            f"  step {record['step']:>7}  train {_fmt(record.get('train_loss'))}  "
            f"val {_fmt(record.get('val_loss'))} ({_fmt(record.get('val_bpc'), '.3f')} bpc){mark}"
        )
    final = info["final"]
    if final:
        out(
            f"final: val {_fmt(final['val_loss'])} nats/char "
            f"({_fmt(final['val_bpc'], '.3f')} bpc) on {final.get('val_chars', 0):,} chars"
        )


@runs_app.command("export")
@user_errors
def runs_export(
    run: str = typer.Argument(..., help="A run directory or the name of a saved run."),
    csv_file: Path = typer.Option(
        ..., "--csv", help="The CSV file to write (outside any run directory; - for stdout)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace the CSV file if it exists."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Every logged step and evaluation of a run as CSV, for a spreadsheet."""
    from engine.errors import ConfigError
    from engine.files import show_path
    from engine.runs.listing import csv_text, export_csv

    if str(csv_file) == "-":
        if json_out:
            raise ConfigError("--csv - writes the CSV on stdout: leave out --json")
        text, rows = csv_text(run)
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    rows = export_csv(run, csv_file, force=force)
    if json_out:
        emit_json({"csv": str(csv_file), "rows": rows})
    else:
        stderr.print(f"wrote {rows} rows to {show_path(csv_file)}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
