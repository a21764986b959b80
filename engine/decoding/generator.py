"""Generation: incremental, streaming and batched decoding, and beam search, behind one class.

`Generator(model, vocab, unigram).stream(prompt, params)` yields characters as
they are made (the TUI and `--stream`); `generate(prompts, params, n)` makes many
samples in one forward call per step; `beam_search` keeps the `beam_width` most
likely continuations, all beams in one batch. Strings handed back are the
continuation only, never the prompt. `stream` and `generate` run the one step
loop of engine/decoding/steps.py (`generate` hands one plain row to the NumPy
step of engine/decoding/single_stream.py, which chooses the same way); beam
search runs beside it (engine/decoding/beam.py).

Rules every path follows:

- Each new character costs one model step on the carried state (see
  engine/decoding/window.py for the Transformer's sliding window).
- An empty prompt starts from a character drawn from the corpus's unigram
  distribution (uniform without one). That character is the first one of the
  continuation and counts towards its length; its probability is its unigram one.
- Prompt characters outside the vocabulary raise a CorpusError naming them,
  unless `drop_unknown` asks to drop them.
- Length: exactly `params.length` characters, unless a stop string ends the
  continuation first. With word tokens (engine/data/words.py) a token is one or
  more characters: decoding stops once the text reaches the length and the last
  token is cut to fit (at most `length` tokens are made, which is always
  enough). A stop string must lie wholly inside the continuation;
  the continuation is cut just after it, so it ends with the stop string (a
  caller that does not want it strips it with `str.removesuffix`).
- Randomness comes from a `torch.Generator` seeded with `params.seed` (fresh
  entropy when None), never from the global RNG: the same seed gives the same
  output, and `stream` and `generate` of one sample give the same text.
- Batched rows (several samples, or prompts of different lengths) advance in
  lockstep: the first columns of every prompt (as many as the shortest has) are
  fed in one call (a prompt shared by all rows is fed once, for one row), then a
  row still inside its prompt is fed its next prompt character instead of a
  sampled one. For recurrent models this is exactly what feeding each prompt
  alone gives; a Transformer's window may slide at other moments than for a
  lone prompt. Greedy rows equal their lone runs; sampled rows share one
  generator, so a row's draws depend on the batch (a batch is reproducible as
  a whole, and a batch of one equals `stream`).
- The model is put in eval mode for the duration of a call (its mode is put
  back after), and moved to `device` when constructed if it is elsewhere.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from engine.data.corpus import Vocab
from engine.decoding.beam import beam_search
from engine.decoding.params import (
    BeamResult,
    SamplingParams,
    TokenInfo,
)
from engine.decoding.processors import sample
from engine.decoding.scoring import continuation_chars, top_alternatives
from engine.decoding.single_stream import sample_stream, single_stream_plan
from engine.decoding.snapshots import StateSnapshots, prime_window
from engine.decoding.steps import columns, mark_stops
from engine.decoding.window import ContextWindow
from engine.errors import ConfigError
from engine.models import CharLM
from engine.validation import is_int

# Without stop strings nothing is read back until the end; with them, whether every
# row has stopped is checked this often (one host sync each time).
STOP_CHECK_EVERY = 16


@dataclass
class _Rows:
    """Encoded rows ready to decode: ids per row and where each continuation starts."""

    ids: list[np.ndarray]
    starts: list[int]  # column of each row's first generated character


class Generator:
    """Decodes from one model and vocabulary; cheap to create, holds no per-call state."""

    def __init__(
        self,
        model: CharLM,
        vocab: Vocab,
        unigram: np.ndarray | Sequence[float] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.model = model
        self.vocab = vocab
        self.device = torch.device(device)
        if next(model.parameters()).device.type != self.device.type:
            model.to(self.device)
        if unigram is None:
            weights = torch.ones(len(vocab))
        else:
            weights = torch.as_tensor(np.asarray(unigram, dtype=np.float64), dtype=torch.float32)
            if weights.shape != (len(vocab),) or not torch.isfinite(weights).all():
                raise ConfigError("the unigram distribution does not match the vocabulary")
            weights = weights.clamp_min(0)
            if weights.sum() <= 0:
                weights = torch.ones(len(vocab))
        self.unigram = (weights / weights.sum()).to(self.device)
        self._chars = np.array(vocab.chars, dtype=object)

    # ----- public API ---------------------------------------------------------------

    def stream(
        self,
        prompt: str,
        params: SamplingParams,
        *,
        drop_unknown: bool = False,
        cancel: threading.Event | None = None,
        snapshots: StateSnapshots | None = None,
    ) -> Iterator[TokenInfo]:
        """Yield the continuation of `prompt` one character at a time.

        Stops after `params.length` characters, after a stop string, or as soon as
        `cancel` is set (checked between characters). Beam search cannot stream
        (the best beam is known only at the end): its best text is yielded at the
        end, character by character. With `snapshots`, a recurrent model resumes
        from the nearest state kept along an earlier text that this prompt starts
        with, and keeps states along this one (see engine/decoding/snapshots.py):
        the output is the same, only the priming is shorter.
        """
        if params.strategy == "beam":
            yield from self._stream_beam(prompt, params, drop_unknown, cancel)
            return
        rng = self._rng(params.seed)
        rows = self._encode([prompt], rng, drop_unknown)  # unknown characters raise here
        if params.length == 0:
            return
        ids, start = rows.ids[0], rows.starts[0]
        stops = tuple(params.stop)
        text = ""
        if start == 0:  # empty prompt: the first character came from the unigram
            char = self.vocab.chars[int(ids[0])][: params.length]
            p = float(self.unigram[int(ids[0])])
            yield TokenInfo(char, p, p, top_alternatives(self.unigram, self.vocab.chars))
            text = char
            if params.length == 1 or _ends_with_stop(text, stops):
                return
        steps = self._stream_steps(ids, start, params, rng, snapshots)
        while len(text) < params.length:
            if cancel is not None and cancel.is_set():
                return
            with self._decoding():
                info = next(steps, None)
            if info is None:
                return
            if len(text) + len(info.char) > params.length:  # a word token cut to fit
                info = replace(info, char=info.char[: params.length - len(text)])
            text += info.char
            yield info
            if _ends_with_stop(text, stops):
                return

    def generate(
        self,
        prompts: str | list[str],
        params: SamplingParams,
        num_samples: int = 1,
        *,
        drop_unknown: bool = False,
    ) -> list[str]:
        """`num_samples` continuations of each prompt, prompt-major ([p0s0, p0s1, p1s0, ...]).

        Sampling and greedy decode every row in one batch. Beam search runs once
        per prompt (all its beams batched) and returns the `num_samples` best
        beams, so it needs num_samples <= beam_width.
        """
        prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompt_list:
            return []
        if not is_int(num_samples) or num_samples < 1:
            raise ConfigError(f"number of samples must be >= 1, got {num_samples}")
        if params.strategy == "beam":
            if num_samples > params.beam_width:
                raise ConfigError(
                    f"beam search returns at most beam-width ({params.beam_width}) "
                    f"continuations, {num_samples} were asked for"
                )
            out = []
            for prompt in prompt_list:
                beams = self.beam_search(prompt, params, num_samples, drop_unknown=drop_unknown)
                out.extend(b.text for b in beams)
            return out
        expanded = [p for p in prompt_list for _ in range(num_samples)]
        if params.length == 0:
            for prompt in prompt_list:  # still report unknown characters
                self.vocab.encode(prompt, drop_unknown=drop_unknown)
            return ["" for _ in expanded]
        rng = self._rng(params.seed)
        rows = self._encode(expanded, rng, drop_unknown)
        with self._decoding():
            return self._sample_batch(rows, params, rng)

    def beam_search(
        self,
        prompt: str,
        params: SamplingParams,
        num_return: int = 1,
        *,
        drop_unknown: bool = False,
    ) -> list[BeamResult]:
        """The `num_return` best continuations by length-normalised log-probability."""
        if not is_int(num_return) or not 1 <= num_return <= params.beam_width:
            raise ConfigError(
                f"beam search returns between 1 and beam-width ({params.beam_width}) "
                f"continuations, {num_return} were asked for"
            )
        if params.length == 0:
            self.vocab.encode(prompt, drop_unknown=drop_unknown)
            return [BeamResult("", 0.0, 0.0)]
        rng = self._rng(params.seed)
        rows = self._encode([prompt], rng, drop_unknown)
        with self._decoding():
            beams = beam_search(self, rows.ids[0], rows.starts[0], params, num_return)
        return [replace(b, text=b.text[: params.length]) for b in beams]

    # ----- helpers shared with engine/decoding/beam.py ----------------------------------------

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return "".join(self._chars[np.asarray(ids, dtype=np.int64)])

    def encode_stops(self, stops: Sequence[str]) -> list[torch.Tensor]:
        """Stop strings as id tensors; one with a character outside the vocabulary can never
        be generated, so it is left out."""
        encoded = []
        for stop in stops:
            if not self.vocab.missing(stop):
                ids = self.vocab.encode(stop)
                encoded.append(torch.as_tensor(ids, dtype=torch.long, device=self.device))
        return encoded

    def history(self, rows: list[np.ndarray], columns: int) -> torch.Tensor:
        """A (len(rows), columns) id tensor on the device, each row's ids at its start."""
        history = np.zeros((len(rows), columns), dtype=np.int64)
        for i, row in enumerate(rows):
            history[i, : row.size] = row
        return torch.from_numpy(history).to(self.device)

    # ----- internals ----------------------------------------------------------------

    def _rng(self, seed: int | None) -> torch.Generator:
        rng = torch.Generator(device=self.device)
        if seed is None:
            rng.seed()  # fresh entropy, without touching the global generator
        else:
            rng.manual_seed(int(seed))
        return rng

    @contextlib.contextmanager
    def _decoding(self) -> Iterator[None]:
        """Eval mode (restored after) and inference mode: decoding never needs autograd; the
        weights do not change meanwhile (the model's step plan is checked once)."""
        was_training = self.model.training
        if was_training:
            self.model.eval()
        try:
            with torch.inference_mode(), self.model.steady_weights():
                yield
        finally:
            if was_training:
                self.model.train()

    def _encode(self, prompts: list[str], rng: torch.Generator, drop_unknown: bool) -> _Rows:
        """Prompts as ids; empty ones get a first character drawn from the unigram."""
        ids = [self.vocab.encode(p, drop_unknown=drop_unknown) for p in prompts]
        empty = [i for i, row in enumerate(ids) if row.size == 0]
        starts = [row.size for row in ids]
        if empty:
            drawn = sample(self.unigram.expand(len(empty), -1), rng)  # the one draw, as every step
            for i, char_id in zip(empty, drawn.tolist(), strict=True):
                ids[i] = np.array([char_id], dtype=np.int64)
        return _Rows(ids, starts)

    def _sample_batch(self, rows: _Rows, params: SamplingParams, rng: torch.Generator) -> list[str]:
        """Greedy or sampled decoding of every row in lockstep; continuations as strings."""
        pipeline = params.pipeline()
        lengths = [row.size for row in rows.ids]
        total = max(start + params.length for start in rows.starts)
        shortest, longest = min(lengths), max(lengths)
        shared = all(np.array_equal(rows.ids[0], row) for row in rows.ids[1:])
        window = ContextWindow(self.model, self.history(rows.ids, total))
        logits = window.prime(shortest, shared=shared)
        plan = single_stream_plan(self.model, window.batch, params, pipeline)
        if plan is not None:  # one plain stream: a NumPy loop (engine/decoding/single_stream.py)
            steps = total - shortest
            tokens = sample_stream(plan, logits, window.state, steps, pipeline, rng)
            row = np.concatenate([rows.ids[0][:shortest], tokens])
            start = rows.starts[0]
            return [self.decode(row[start : start + params.length])[: params.length]]
        prompt_ends = torch.tensor(lengths, device=self.device) if longest > shortest else None
        starts = torch.tensor(rows.starts, device=self.device)
        stops = self.encode_stops(params.stop)
        never = total + 1
        stop_at = torch.full((window.batch,), never, dtype=torch.long, device=self.device)
        steps = columns(window, logits, pipeline, rng, shortest, total, prompt_ends=prompt_ends)
        for column, _ in enumerate(steps, start=shortest):
            if stops:
                stop_at = mark_stops(window, stops, starts, stop_at, never)
                if (column - shortest) % STOP_CHECK_EVERY == 0:
                    done = (stop_at < never) | (starts + params.length <= window.filled)
                    if bool(done.all()):
                        break
        history = window.history.cpu().numpy()
        ends = stop_at.cpu().tolist()
        return [
            self.decode(history[i, start : min(start + params.length, ends[i])])[: params.length]
            for i, start in enumerate(rows.starts)
        ]

    def _stream_steps(
        self,
        ids: np.ndarray,
        start: int,
        params: SamplingParams,
        rng: torch.Generator,
        snapshots: StateSnapshots | None,
    ) -> Iterator[TokenInfo | None]:
        """Prime one row (from the nearest snapshot, if any) and return its step loop,
        which yields each next character with what the app shows about it."""
        stepped = None
        with self._decoding():
            window = ContextWindow(self.model, self.history([ids], ids.size + params.length))
            if snapshots is not None and snapshots.bind(self.model):
                track = snapshots.start(window.history)
                logits = prime_window(window, ids.size, snapshots, track)

                def stepped() -> None:  # keep states along this text for later branches
                    snapshots.record(track, window.fed, window.state)
            else:
                logits = window.prime(ids.size)
        end = start + params.length
        chars = self.vocab.chars
        return columns(
            window, logits, params.pipeline(), rng, ids.size, end, chars=chars, stepped=stepped
        )

    def _stream_beam(
        self,
        prompt: str,
        params: SamplingParams,
        drop_unknown: bool,
        cancel: threading.Event | None,
    ) -> Iterator[TokenInfo]:
        """The best beam, character by character, with the model's view of each character
        (beam search ranks by the model's distribution, so prob == model_prob)."""
        best = self.beam_search(prompt, params, 1, drop_unknown=drop_unknown)[0]
        scored = continuation_chars(self.model, self.vocab, self.unigram, prompt, best.text)
        for char, prob, model_prob, top in scored:
            if cancel is not None and cancel.is_set():
                return
            yield TokenInfo(char, prob, model_prob, top)


def _ends_with_stop(text: str, stops: tuple[str, ...]) -> bool:
    return any(text.endswith(stop) for stop in stops)
