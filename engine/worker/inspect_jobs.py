"""The engine's inspection commands (a mixin of EngineServer): units, find, attention,
saliency and the character map, on the current model (a snapshot while it trains).

InspectText computes every unit over a text once and keeps the result; InspectUnit
and FindUnits then answer from it without touching the model. Attention and
saliency take a fresh snapshot, so while training they show the latest weights.
Everything sent back is plain lists of floats and strings.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import UserError
from engine.worker import protocol as p
from engine.worker.jobs import Job

if TYPE_CHECKING:  # pragma: no cover
    from engine.inspect import Activations


class InspectHandlers:
    """Handlers for the Inspect pane; the activations of the last text live here."""

    _inspected: tuple[Activations, np.ndarray] | None = None  # (activations, ids) of the text

    def _inspection(self) -> tuple[Activations, np.ndarray]:
        with self.lock:
            if self._inspected is None:
                raise UserError("no text inspected yet: pick a text first")
            return self._inspected

    def on_InspectText(self, cmd: p.InspectText) -> None:
        corpus = self.corpus
        self._cancel_kind("inspect-text")

        def work(job: Job) -> None:
            from engine.inspect import encode_text, held_out_excerpt, unit_activations

            model, vocab, _, _ = self._current_model()
            if cmd.source == "excerpt":
                if corpus is None:
                    raise UserError("no corpus loaded to take an excerpt from")
                raw = held_out_excerpt(corpus, cmd.chars)
            elif cmd.source == "text":
                raw = cmd.text
            else:
                raise UserError(f"unknown text source {cmd.source!r}")
            text, ids = encode_text(vocab, raw, drop_unknown=True)
            dropped = "".join(vocab.missing(raw))
            started = time.perf_counter()
            acts = unit_activations(model, ids, text)
            if job.cancel.is_set():
                return
            with self.lock:
                self._inspected = (acts, ids)
            labels = acts.labels()
            if cmd.unit and cmd.unit in labels:
                unit = cmd.unit
            else:
                unit = labels[int(np.argmax(acts.matrix().std(axis=0)))]
            self.out.send(
                p.InspectReady(
                    text=text,
                    model_type=str(model.config.model_type),
                    groups=[[g.name, g.size] for g in acts.groups],
                    unit=unit,
                    values=_floats(acts.unit(unit)),
                    dropped=dropped,
                    seconds=time.perf_counter() - started,
                    req=cmd.req,
                )
            )

        self._spawn("inspect-text", cmd, work)

    def on_InspectUnit(self, cmd: p.InspectUnit) -> None:
        acts, _ = self._inspection()
        self.out.send(p.UnitValues(cmd.unit, _floats(acts.unit(cmd.unit)), cmd.req))

    def on_FindUnits(self, cmd: p.FindUnits) -> None:
        from engine.inspect import find_units

        acts, _ = self._inspection()

        def work(job: Job) -> None:
            result = find_units(acts, cmd.pattern, cmd.top)
            top = [[m.label, m.r] for m in result.top]
            self.out.send(p.UnitsFound(cmd.pattern, top, result.covered, result.chars, cmd.req))

        self._spawn("inspect-find", cmd, work)

    def on_InspectAttention(self, cmd: p.InspectAttention) -> None:
        from engine.inspect import attention_at, require_transformer

        _, ids = self._inspection()

        def work(job: Job) -> None:
            model = require_transformer(self._current_model()[0])
            amap = attention_at(model, ids, cmd.position)
            self.out.send(
                p.AttentionWeights(amap.position, amap.start, amap.weights.tolist(), cmd.req)
            )

        self._spawn("inspect-attention", cmd, work)

    def on_InspectSaliency(self, cmd: p.InspectSaliency) -> None:
        from engine.inspect import saliency_at

        _, ids = self._inspection()

        def work(job: Job) -> None:
            sal = saliency_at(self._current_model()[0], ids, cmd.position, cmd.window)
            self.out.send(
                p.SaliencyScores(sal.position, sal.start, _floats(sal.scores), sal.logprob, cmd.req)
            )

        self._spawn("inspect-saliency", cmd, work)

    def on_InspectEmbeddings(self, cmd: p.InspectEmbeddings) -> None:
        def work(job: Job) -> None:
            from engine.inspect import character_map

            model, vocab, _, _ = self._current_model()
            cmap = character_map(model, vocab, cmd.neighbours)
            self.out.send(
                p.CharMapReady(
                    chars=list(cmap.chars),
                    points=cmap.points.tolist(),
                    explained=list(cmap.explained),
                    neighbours=[[[c, float(s)] for c, s in near] for near in cmap.neighbours],
                    req=cmd.req,
                )
            )

        self._spawn("inspect-map", cmd, work)


def _floats(values: Any) -> list[float]:
    return np.asarray(values, dtype=np.float64).tolist()
