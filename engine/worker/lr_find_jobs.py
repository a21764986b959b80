"""The engine's learning-rate range test command (a mixin of EngineServer).

It trains a throwaway model on the loaded corpus and writes nothing, so it
never touches a run; it cannot start while training runs (they would share the
cores and the answer would mean little), and Cancel stops it between steps.
"""

from __future__ import annotations

from engine.errors import UserError
from engine.worker import protocol as p
from engine.worker.jobs import Job


class LRFindHandlers:
    """LRFind: points as they come (latest wins), then the curve and the suggestion."""

    def on_LRFind(self, cmd: p.LRFind) -> None:
        from engine.training.lr_find import check_range
        from engine.training.request import form_request, resolve_training

        if self.training:  # type: ignore[attr-defined]
            raise UserError("stop training before a learning-rate range test")
        corpus = self.corpus  # type: ignore[attr-defined]
        if corpus is None:
            raise UserError("no corpus loaded yet: pick one in the Corpus tab first")
        check_range(cmd.min_lr, cmd.max_lr, cmd.steps)
        # The model training would build (engine/training/request.py), less the width
        # fitting: that measures the machine when a run starts.
        request = form_request(cmd.model_type, cmd.preset, cmd.model, cmd.train)
        request.settings["fit_width"] = False
        request.asked = request.chosen() | {"fit_width"}
        resolution = resolve_training(request, corpus)
        config, model_config = resolution.config, resolution.model_config
        self._cancel_kind("lr-find")  # type: ignore[attr-defined]

        def work(job: Job) -> None:
            from engine.training.lr_find import lr_find

            def point(step: int, lr: float, loss: float, smoothed: float) -> None:
                self.out.latest(  # type: ignore[attr-defined]
                    "lr-find", p.LRFindPoint(step, lr, loss, smoothed, cmd.req)
                )

            result = lr_find(
                corpus,
                model_config,
                config,
                min_lr=cmd.min_lr,
                max_lr=cmd.max_lr,
                steps=cmd.steps,
                on_point=point,
                should_stop=job.cancel.is_set,
            )
            self.out.send(p.LRFindDone(result.as_dict(), cmd.req))  # type: ignore[attr-defined]

        self._spawn("lr-find", cmd, work)  # type: ignore[attr-defined]
