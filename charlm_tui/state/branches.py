"""Every generation and every branch of it, as a tree: writing with the model, with undo.

A root is a generation from a prompt; a branch forks its parent at a character
(`fork_at`, counted in the parent's continuation), puts another character there
and continues. A branch's `text` is its whole continuation after the prompt (the
part it shares with its parent included), so showing or exporting a branch never
walks the tree. The roots are siblings of one another, as are the children of
one parent: moving to the previous/next sibling and up to the parent is undo and
redo of branches (`to_child` goes back down to the child last visited).

No UI here: the generation pane keeps one `BranchTree` and shows its `current`.
Each branch keeps the engine.decoding.params.SamplingParams that made it (the
knobs' object, then the engine's echo with its seed): checked once when built,
never rebuilt from a dict. Export uses the field names of `charlm-tui generate
--json` (`prompt`, `params` with the `seed` inside: `SamplingParams.as_dict()`,
which `SamplingParams(**params)` rebuilds, `samples`, `chars`), so one reader
handles both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.decoding.params import SamplingParams

FORMAT = "charlm-branches/1"


@dataclass
class Branch:
    """One generation: what was asked and what came, with the model's view of each character."""

    id: int
    parent: int | None
    fork_at: int  # characters of the parent's continuation kept (0 for a root)
    prompt: str
    params: SamplingParams
    text: str = ""
    probs: list[float] = field(default_factory=list)  # under the sampling distribution
    model_probs: list[float] = field(default_factory=list)
    tops: list[list] = field(default_factory=list)  # [(char, model p)] alternatives per char
    children: list[int] = field(default_factory=list)
    stopped: bool = False

    @property
    def own_start(self) -> int:
        """Where this branch's own characters begin (after the one chosen at the fork)."""
        return self.fork_at + 1 if self.parent is not None else 0

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "parent": self.parent,
            "fork_at": self.fork_at,
            "prompt": self.prompt,
            "params": self.params.as_dict(),
            "samples": [self.text],
            "chars": len(self.text),
            "stopped": self.stopped,
        }


class BranchTree:
    """The generations of a session; `current` is the one on screen."""

    def __init__(self) -> None:
        self.branches: dict[int, Branch] = {}
        self.roots: list[int] = []
        self.current: int | None = None
        self._last_child: dict[int, int] = {}
        self._next_id = 1

    def __len__(self) -> int:
        return len(self.branches)

    def get(self, branch_id: int | None = None) -> Branch | None:
        key = self.current if branch_id is None else branch_id
        return self.branches.get(key) if key is not None else None

    # ----- growing ------------------------------------------------------------------

    def new_root(self, prompt: str, params: SamplingParams) -> Branch:
        """A fresh generation from `prompt`; it becomes current."""
        branch = self._add(Branch(self._next_id, None, 0, prompt, params))
        self.roots.append(branch.id)
        return branch

    def fork(self, parent_id: int, at: int, char: str, params: SamplingParams) -> Branch:
        """Branch `parent_id` at character `at`, with `char` there instead; it becomes current.

        The new branch holds the parent's first `at` characters and `char`; its own
        characters are appended as they are generated. A fork at a character the
        parent inherited hangs from the ancestor that made that character, so forks
        at one place are siblings, whichever of them was on screen.
        """
        parent = self.branches[parent_id]
        while parent.parent is not None and at <= parent.fork_at:
            parent = self.branches[parent.parent]
        parent_id = parent.id
        if not 0 <= at <= len(parent.text):
            raise IndexError(f"fork at {at} outside a text of {len(parent.text)} characters")
        model_p = math.nan
        if at < len(parent.tops):
            model_p = next((float(q) for c, q in parent.tops[at] if c == char), math.nan)
        branch = Branch(
            self._next_id,
            parent_id,
            at,
            parent.prompt,
            params,
            text=parent.text[:at] + char,
            probs=[*parent.probs[:at], math.nan],  # chosen by hand, not drawn
            model_probs=[*parent.model_probs[:at], model_p],
            tops=[*parent.tops[:at], list(parent.tops[at]) if at < len(parent.tops) else []],
        )
        self._add(branch)
        parent.children.append(branch.id)
        self._last_child[parent_id] = branch.id
        return branch

    def append(self, branch_id: int, text: str, probs: list, model_probs: list, tops: list) -> None:
        branch = self.branches[branch_id]
        branch.text += text
        branch.probs.extend(probs)
        branch.model_probs.extend(model_probs)
        branch.tops.extend(tops)

    def _add(self, branch: Branch) -> Branch:
        self._next_id += 1
        self.branches[branch.id] = branch
        self.current = branch.id
        return branch

    # ----- moving -------------------------------------------------------------------

    def siblings(self, branch_id: int | None = None) -> list[int]:
        branch = self.get(branch_id)
        if branch is None:
            return []
        if branch.parent is None:
            return list(self.roots)
        return list(self.branches[branch.parent].children)

    def to_sibling(self, delta: int) -> Branch | None:
        """The previous (-1) or next (+1) sibling becomes current; None at either end."""
        branch = self.get()
        if branch is None:
            return None
        siblings = self.siblings()
        index = siblings.index(branch.id) + delta
        if not 0 <= index < len(siblings):
            return None
        return self._visit(siblings[index])

    def to_parent(self) -> Branch | None:
        branch = self.get()
        if branch is None or branch.parent is None:
            return None
        return self._visit(branch.parent)

    def to_child(self) -> Branch | None:
        """Back down to the child last visited (redo after `to_parent`)."""
        if self.current is None or self.current not in self._last_child:
            return None
        return self._visit(self._last_child[self.current])

    def _visit(self, branch_id: int) -> Branch:
        branch = self.branches[branch_id]
        if branch.parent is not None:
            self._last_child[branch.parent] = branch_id
        self.current = branch_id
        return branch

    # ----- showing ------------------------------------------------------------------

    def where(self) -> str:
        """Where the current branch sits: `branch 3/5 at char 214`, or `generation 2/3`."""
        branch = self.get()
        if branch is None:
            return ""
        siblings = self.siblings()
        place = f"{siblings.index(branch.id) + 1}/{len(siblings)}"
        if branch.parent is None:
            return f"generation {place}"
        depth, node = 0, branch
        while node.parent is not None:
            depth, node = depth + 1, self.branches[node.parent]
        deep = f" (depth {depth})" if depth > 1 else ""
        return f"branch {place} at char {branch.fork_at + 1}{deep}"

    def as_json(self) -> dict:
        return {
            "format": FORMAT,
            "current": self.current,
            "branches": [b.as_json() for b in self.branches.values()],
        }
