"""The training pane's final line: a run whose val loss turned up shows its best model's figure."""

from __future__ import annotations

from charlm_tui.app import CharLMApp
from charlm_tui.panes.corpus import CorpusPane
from engine.worker import protocol as p
from tests.tui.waiting import text_of, wait_until

SIZE = (120, 36)


async def test_the_final_line_names_the_best_model_and_why_the_run_stopped() -> None:
    app = CharLMApp(engine_mode="thread", corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        corpus = app.query_one(CorpusPane)
        await wait_until(pilot, lambda: corpus.loaded_name == "markov", 30, "markov")
        result = {
            "val_loss": 2.0012,
            "val_chars": 1440,
            "val_split_chars": 1440,
            "stopped_by": "overfitting",
            "reported": "best",
            "best_step": 250,
            "last_val_loss": 2.1734,
            "steps": 1000,
        }
        app._handle_engine_event(p.TrainFinished(result))
        await pilot.pause()
        state = text_of(app, "#train-state")
        assert "val loss rose past its best" in state
        assert "val 2.0012 on the whole held-out split · best at step 250" in state
        assert "2.1734" in state
        # A run still improving: its last weights are the result, nothing more is said.
        app._handle_engine_event(
            p.TrainFinished(dict(result, stopped_by="time_budget", reported="last"))
        )
        await pilot.pause()
        state = text_of(app, "#train-state")
        assert "time limit" in state and "best at step" not in state
