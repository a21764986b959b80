"""The command palette (ctrl+p): the app's main actions, saved runs and sample corpora by name.

Every entry calls something the app or a pane already does with a key, so the
palette is a way to find actions, never the only way to reach one.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from engine.data.samples import list_samples


class CharLMCommands(Provider):
    """The main actions by name, for the command palette (ctrl+p)."""

    def _commands(self) -> list[tuple[str, object, str]]:
        app: Any = self.app  # the CharLMApp (not imported: it imports this module)
        commands: list[tuple[str, object, str]] = [
            ("Show corpus tab", partial(app.action_tab, "corpus"), "pick and inspect a corpus"),
            ("Show training tab", partial(app.action_tab, "training"), "train and watch"),
            ("Show generate tab", partial(app.action_tab, "generate"), "prompt and knobs"),
            (
                "Show inspect tab",
                partial(app.action_tab, "inspect"),
                "units, unit search, attention, saliency, character map",
            ),
            ("Open corpus file or directory…", app.action_open_file, "browse the disk"),
            ("Train", partial(app.training_action, "train"), "with the training form's settings"),
            ("Pause or resume training", partial(app.training_action, "pause_resume"), ""),
            ("Stop training", partial(app.training_action, "stop"), "evaluate and save"),
            ("Save checkpoint", partial(app.training_action, "save"), "of the current model"),
            (
                "Evaluate on the held-out split",
                partial(app.training_action, "evaluate"),
                "loss, bits/char and perplexity of the current model",
            ),
            ("Generate", partial(app.generation_action, "generate"), "from the prompt"),
            (
                "Compare strategies",
                partial(app.generation_action, "compare"),
                "the prompt under several strategies, with statistics",
            ),
            (
                "Compare labels",
                partial(app.generation_action, "compare", True),
                "a conditional model's labels side by side",
            ),
            ("Add model to blend…", app.action_add_to_blend, "generate from a mixture of runs"),
            (
                "Clear blend",
                partial(app.generation_action, "clear_blend"),
                "the current model alone",
            ),
            ("Restart engine", app.action_restart_engine, "start a fresh engine process"),
            ("Help", app.action_help, "keys and colours"),
        ]
        for run in app.saved_runs()[:20]:
            when = time.strftime("%b %d %H:%M", time.localtime(run.get("saved_at", 0)))
            commands.append(
                (
                    f"Load run: {run.get('corpus')} · {run.get('model_type')} · {when}",
                    partial(app.load_run, str(run["run_dir"])),
                    f"step {run.get('step', 0):,} · {run['name']}",
                )
            )
        for sample in list_samples():
            commands.append(
                (f"Load sample corpus: {sample.name}", partial(app.load_corpus, sample.name), "")
            )
        return commands

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text or None)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text or None)  # type: ignore[arg-type]
