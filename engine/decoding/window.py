"""The decoding state of B rows advanced in lockstep: their tokens, the model state, the window.

Every row has the same number of tokens at every moment, so one forward call per
step serves the whole batch, and a Transformer's key/value cache (which needs one
length for all rows) stays valid. `history` holds every token of every row
(prompt and generated), column c being position c.

Incremental decoding: the prompt is fed once (`prime`), then each new token costs
one forward step of one position, carrying the state (an RNN's hidden state, a
Transformer's key/value cache).

The Transformer's sliding window: a cache holds at most `block_size` positions
(learned position embeddings). When it is full and one more token must be fed,
the last `max(1, block_size // 2)` tokens (the new one included) are re-fed as a
fresh cache. Re-feeding costs half a window once every half window of steps, so
the amortised cost stays one position per character plus a constant, and every
prediction sees between half a context and a full one, as in training (never
the one-token context a naive "drop the oldest" cache would give right after the
slide). A prompt longer than the window is primed from its last `block_size`
tokens, so the first prediction sees a full context. Recurrent models have no
window: their state summarises everything fed so far.
"""

from __future__ import annotations

import torch

from engine.models import CharLM, State

# Long prompts go through the model in pieces, bounding activation memory: priming keeps
# only the last position's logits, so a 200k-character prompt costs one chunk of
# (positions x vocabulary) at a time, not the whole prompt's.
PROMPT_CHUNK = 2048


class ContextWindow:
    """Model state plus token history for B rows; feeds tokens, slides a Transformer's window."""

    def __init__(self, model: CharLM, history: torch.Tensor, filled: int = 0) -> None:
        """`history` (B, capacity) long ids on the model's device; its first `filled`
        columns hold known tokens (a prompt, or a whole text to teacher-force)."""
        self.model = model
        self.history = history
        self.block = model.max_context
        self.keep = max(1, self.block // 2) if self.block else 0
        self.state: State = None
        self.positions = 0  # positions in the current state (a Transformer's cache length)
        self.filled = filled  # columns of `history` holding tokens
        self.fed = 0  # columns whose tokens the state has seen

    @property
    def batch(self) -> int:
        return int(self.history.shape[0])

    def prime(self, columns: int, *, shared: bool = False) -> torch.Tensor:
        """Feed the first `columns` tokens of every row; returns next-token logits (B, V).

        `shared`: all rows hold the same tokens, so feed one row and copy its state.
        """
        self.filled = max(self.filled, columns)
        start = 0
        if self.block is not None and columns > self.block:
            start = columns - self.block  # the first prediction sees a full window
        rows = self.history[:1] if shared else self.history
        self.state, self.positions = None, 0
        logits = self._run(rows, start, columns, last_only=True)[:, -1]
        self.fed = columns
        if shared and self.batch > 1:
            index = torch.zeros(self.batch, dtype=torch.long, device=self.history.device)
            self.state = self.model.select_state(self.state, index)
            logits = logits.expand(self.batch, -1)
        return logits

    def push(self, tokens: torch.Tensor) -> None:
        """Write the next token of every row (B,) into the history (not fed yet)."""
        self.history.select(1, self.filled).copy_(tokens)
        self.filled += 1

    def step(self) -> torch.Tensor:
        """Feed the last pushed token; returns next-token logits (B, V)."""
        if self.block is None and self.fed < self.filled:
            # No window to slide (a recurrent model): one call, nothing around it.
            logits, self.state = self.model.step_one(self.history[:, self.fed], self.state)
            self.fed += 1
            self.positions += 1
            return logits
        return self.feed(1)[:, -1]

    def feed(self, count: int) -> torch.Tensor:
        """Feed the next `count` pushed tokens; logits (B, count, V), position by position.

        Equal (up to float rounding) to feeding them one at a time with `step`,
        slides included, which is what lets a continuation be scored in chunks.
        """
        end = self.fed + count
        if end > self.filled:
            raise ValueError("feeding tokens that were never pushed")
        pieces = []
        while self.fed < end:
            if self.block is not None and self.positions >= self.block:
                # Full cache: restart from the last `keep` tokens, the next one included.
                first = self.fed + 1 - self.keep
                self.state, self.positions = None, 0
                pieces.append(self._run(self.history, first, self.fed + 1)[:, -1:])
                self.fed += 1
                continue
            room = end - self.fed
            if self.block is not None:
                room = min(room, self.block - self.positions)
            pieces.append(self._run(self.history, self.fed, self.fed + room))
            self.fed += room
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)

    def reorder(self, index: torch.Tensor) -> None:
        """Rows `index` of everything, in that order (beam search keeps its best beams)."""
        self.history = self.history.index_select(0, index)
        if self.state is not None:
            self.state = self.model.select_state(self.state, index)

    def _run(
        self, rows: torch.Tensor, start: int, stop: int, *, last_only: bool = False
    ) -> torch.Tensor:
        """Columns [start, stop) of `rows` through the model, carrying the state.

        `last_only`: return the logits of the last position alone (B, 1, V); the
        others are dropped chunk by chunk as soon as they are computed.
        """
        outputs = []
        for first in range(start, stop, PROMPT_CHUNK):
            last = min(stop, first + PROMPT_CHUNK)
            logits, self.state = self.model(rows[:, first:last], self.state)
            self.positions += last - first
            outputs.append(logits[:, -1:] if last_only else logits)
            if last_only and len(outputs) > 1:
                del outputs[0]
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)
