"""The generation pane's prompt box."""

from __future__ import annotations

from textual.widgets import Input

# The prompt box holds this much (longer prompts: `generate --prompt-file`). A paste that
# arrives as keystrokes (no bracketed paste) stops growing here, so each key stays cheap
# and the app keeps answering, ctrl+q included.
PROMPT_MAX_CHARS = 8192


class PromptInput(Input):
    """The prompt: capped in length, and it says so once instead of ringing per key."""

    _told = False

    def restricted(self) -> None:
        if not self._told:
            self._told = True
            self.notify(
                f"The prompt holds at most {self.max_length:,} characters; "
                "the rest was left out (use `charlm-tui generate --prompt-file` for longer).",
                title="Prompt",
                severity="warning",
            )
