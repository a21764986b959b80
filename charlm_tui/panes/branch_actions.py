"""The generation pane's writing-tool actions: fork at the cursor, move through the branch
tree, export the text or the tree.

A mixin of charlm_tui.panes.generation.GenerationPane (it uses the pane's branch tree,
output view, knobs and status line): the tree navigation is one concern, the
knobs (knob_actions.py) another, the engine's generation events a third.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from charlm_tui.state.branches import Branch, BranchTree
from charlm_tui.widgets.knobs import sampling_params
from charlm_tui.widgets.token_view import TokenView


class BranchActions:
    """Fork (`1`..`9`), siblings (`[` `]`), parent (`u`), child (`y`), export (`x` `X`)."""

    # Provided by GenerationPane.
    branches: BranchTree
    values: dict
    has_model: bool
    generating: bool
    _streaming: Any
    app: Any
    query_one: Any
    notify: Any
    _show_status: Any
    _start: Any
    _stop_running: Any

    def _show_branch(self, branch: Branch, cursor: bool = True) -> None:
        view = self.query_one(TokenView)
        view.reset(branch.prompt)
        if branch.text:
            view.append(branch.text, branch.probs, branch.model_probs, branch.tops)
        if cursor and branch.text:
            view.action_jump(min(branch.fork_at, len(branch.text) - 1))

    def action_pick(self, rank: int) -> None:
        """Put the model's alternative `rank` at the cursor and continue from it (a branch)."""
        view = self.query_one(TokenView)
        current = self.branches.get()
        entry = view.entry(view.cursor)
        if current is None or entry is None:
            self._show_status("move the cursor onto a generated character to branch there")
            return
        tops = entry[3]
        if not 1 <= rank <= len(tops):
            self.app.bell()
            self._show_status(f"there are {len(tops)} alternatives here")
            return
        if not self.has_model:
            self._show_status("no model to continue with")
            return
        at = view.cursor
        if self.generating and self._streaming == current.id:
            self._stop_running()  # keep what came so far; the branch forks from it
        chosen = str(tops[rank - 1][0])
        self._start(self.branches.fork(current.id, at, chosen, sampling_params(self.values)))

    def _move(self, branch: Branch | None, where: str) -> None:
        if branch is None:
            self.app.bell()
            self._show_status(f"no {where}")
            return
        self._stop_running()
        self._show_branch(branch)
        self._show_status()

    def action_sibling(self, delta: int) -> None:
        self._move(
            self.branches.to_sibling(delta), "previous branch" if delta < 0 else "next branch"
        )

    def action_parent(self) -> None:
        self._move(self.branches.to_parent(), "parent: this is a generation from the prompt")

    def action_child(self) -> None:
        self._move(self.branches.to_child(), "branch to go back to")

    def action_export(self, what: str) -> None:
        """Write the current text, or the whole tree as JSON, into the working directory."""
        branch = self.branches.get()
        if branch is None:
            self._show_status("nothing to save yet: generate first (Enter)")
            self.notify("Nothing to save yet: generate first.", title="Save", severity="warning")
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        if what == "tree":
            path = Path.cwd() / f"charlm-branches-{stamp}.json"
            path.write_text(json.dumps(self.branches.as_json(), indent=1) + "\n", encoding="utf-8")
        else:
            path = Path.cwd() / f"charlm-text-{stamp}.txt"
            path.write_text(branch.prompt + branch.text, encoding="utf-8")
        self.notify(f"Wrote {path}", title="Saved", markup=False)
        self._show_status(f"wrote {path.name}")
