"""What the training pane says: its status line, the line a finished run leaves, the
entries of the saved-runs list and the hint under a loaded run.

Pure wording, kept apart from the pane that shows it: each function takes what an
engine event carries and returns Textual markup (model and file text escaped).
"""

from __future__ import annotations

import time
from pathlib import Path

from charlm_tui.widgets.metrics import fmt_loss

STATE_LABELS = {
    "idle": ("idle", "dim"),
    "starting": ("starting", "yellow"),
    "training": ("training", "green"),
    "paused": ("paused", "yellow"),
    "evaluating": ("evaluating", "cyan"),
    "saving": ("saving", "cyan"),
    "done": ("done", "green"),
    "stopped": ("stopped", "yellow"),
    "failed": ("failed", "red"),
    "lr-find": ("finding a learning rate", "cyan"),
}
AFTER_A_RUN = "F5: continue this run or start a new one (asks) · F4: write with it"
# Why a run ended, as the start of its last status line.
STOPPED_BY = {
    "max_steps": "max steps · ",
    "time_budget": "time limit · ",
    "early_stop": "stopped early (patience), best kept · ",
    "overfitting": "stopped early: val loss rose past its best · ",
}


def state_line(state: str, message: str = "") -> str:
    """The status line: a coloured dot, the state, then the message (a finished run
    also says what F5 does now)."""
    if state in ("done", "stopped"):
        message += (" · " if message else "") + AFTER_A_RUN
    label, colour = STATE_LABELS.get(state, (state, "white"))
    text = f"[{colour}]●[/] [b]{label}[/]"
    if message:
        text += f" [dim]{message}[/]"
    return text


def finished(result: dict) -> tuple[str, str]:
    """(state, message) for a TrainFinished's result: why it stopped, its val figure and
    what that figure covers."""
    reason = STOPPED_BY.get(result.get("stopped_by", ""), "")
    which = ""
    if result.get("reported") == "best":  # the result is the best model (its figure)
        which = (
            f" · best at step {result.get('best_step', 0):,} (the last weights: "
            f"val {fmt_loss(result.get('last_val_loss'))}, kept to continue)"
        )
    state = "stopped" if result.get("stopped_by") == "stop" else "done"
    return state, f"{reason}val {fmt_loss(result.get('val_loss'))} on {scored(result)}{which}"


def scored(result: dict) -> str:
    """What the final val figure covers: the whole split only when every char was scored."""
    chars, whole = result.get("val_chars"), result.get("val_split_chars")
    if result.get("partial_eval") or (chars is not None and whole is not None and chars < whole):
        why = "cut short by Stop" if result.get("stopped_by") == "stop" else "time limit"
        return f"{chars or 0:,} of {whole or 0:,} held-out chars ({why})"
    return "the whole held-out split"


def run_entry(run: dict) -> str:
    """A saved run in the list: corpus, model and when, then its step and val loss."""
    loss = run.get("best_val_loss") or run.get("val_loss")
    when = time.strftime("%b %d %H:%M", time.localtime(run.get("saved_at", 0)))
    detail = f"step {run['step']:,}" + (f" · val {loss:.3f}" if loss else "")
    title = f"{run.get('corpus', '?')} · {run.get('model_type', '?')} · {when}"
    return f"{escape(title)}\n[dim]  {detail}[/]"


def loaded_hint(
    run_dir: str, matches: bool, run_corpus: str, corpus: str, room: str, file_changed: bool
) -> str:
    """Under a loaded run: F5 continues it on its own corpus, starts anew on another (or on
    its own file, `file_changed` since the run trained on it)."""
    run = escape(Path(run_dir).name)
    if matches:
        hint = f"run {run}: F5 continues it (untick “continue this run” to start a new one)."
        return hint + room
    if file_changed:
        return (
            f"run {run} was trained on {escape(run_corpus)} before the file changed (its "
            "characters differ now): F5 starts a new run on it (asks first)."
        )
    return (
        f"run {run} was trained on {escape(run_corpus or 'another corpus')}, not on "
        f"{escape(corpus or 'the loaded corpus')}: F5 starts a new run on "
        "the loaded corpus (asks first); open its corpus to continue it."
    )


def escape(text: str) -> str:
    """Model output shown as is, never read as markup."""
    from textual.markup import escape as markup_escape

    return markup_escape(text)
