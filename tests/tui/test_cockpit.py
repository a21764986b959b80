"""The training cockpit in the app: whole history on load, patience, the LR range test, items."""

from __future__ import annotations

from pathlib import Path

import pytest

from charlm_tui.app import CharLMApp
from charlm_tui.panes.corpus import CorpusPane
from charlm_tui.panes.training import TrainingPane
from charlm_tui.widgets.metrics import LossPlot
from tests.tui.waiting import text_of, wait_until

SIZE = (120, 36)


def _app(**kwargs) -> CharLMApp:
    return CharLMApp(engine_mode="thread", **kwargs)


async def _loaded(pilot, name: str) -> None:
    pane = pilot.app.query_one(CorpusPane)
    await wait_until(pilot, lambda: pane.loaded_name == name, what=f"corpus {name}")


@pytest.fixture
def saved_run(data_dir: Path) -> Path:
    """A 60-step run of the markov sample in the app's runs directory (trained here)."""
    from engine.config.train import TrainConfig
    from engine.data.corpus import load_corpus
    from engine.training.trainer import Trainer
    from tests.helpers import tiny_config

    out = data_dir / "runs" / "markov-lstm-test"
    config = TrainConfig(
        batch_size=4, seq_len=16, max_steps=60, eval_interval=20, eval_chars=256, device="cpu"
    )
    Trainer(load_corpus("markov"), tiny_config("lstm"), config, out_dir=out).run()
    return out


async def test_loading_a_run_redraws_its_whole_history(saved_run: Path) -> None:
    from engine.runs.metrics_log import METRICS_FILE, read_metrics

    records = read_metrics(saved_run / METRICS_FILE)
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        await pilot.press("f3")
        pane = app.query_one(TrainingPane)
        pane.load_run(str(saved_run))
        await wait_until(pilot, lambda: pane.loaded_run == str(saved_run), 60, "the run to load")
        plot = app.query_one(LossPlot)
        steps = [(float(r["step"]), r["train_loss"]) for r in records if r["kind"] == "step"]
        evals = [(float(r["step"]), r["val_loss"]) for r in records if r["kind"] == "eval"]
        assert len(steps) == 60
        assert plot.train_points == steps  # every logged step, not one point per evaluation
        assert plot.val_points == evals


async def test_patience_shows_evaluations_left_and_lr_find_fills_the_form() -> None:
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        await pilot.press("f3")
        app.query_one("#preset").value = "tiny"
        await pilot.pause()
        pane = app.query_one(TrainingPane)

        # The range test: a curve in the plot, a suggestion, "Use lr" puts it in the form.
        await pilot.press("f9")
        # On a quiet machine a tiny model's sweep can end between two polls: started or done.
        await wait_until(
            pilot,
            lambda: pane.state == "lr-find" or pane.lr_suggestion is not None,
            10,
            "the range test to start",
        )
        await wait_until(pilot, lambda: pane.state == "idle", 120, "the range test to end")
        assert pane.lr_suggestion is not None and 1e-5 <= pane.lr_suggestion <= 1.0
        plot = app.query_one(LossPlot)
        assert plot.lr_curve is not None and len(plot.lr_curve[0]) > 10
        assert app.query_one("#use-lr").display
        app.query_one("#use-lr").press()
        await pilot.pause()
        assert float(app.query_one("#f-lr").value) == pytest.approx(pane.lr_suggestion, rel=1e-2)
        assert "suggested" in text_of(app, "#train-sample")

        # Patience: the metrics row counts the evaluations left before training stops.
        app.query_one("#f-max_steps").value = "40"
        app.query_one("#f-eval_interval").value = "20"
        app.query_one("#f-patience").value = "3"
        await pilot.press("f5")
        await wait_until(pilot, lambda: pane.state in ("done", "failed"), 120, "training")
        assert pane.state == "done"
        assert "evals left" in str(app.query_one("#m-left").value)
        assert plot.lr_curve is None  # training took the plot back


async def test_a_names_list_is_seen_as_items(tmp_path: Path) -> None:
    from engine.data.names import synthetic_names

    names = tmp_path / "names.txt"
    names.write_text("\n".join(synthetic_names(500, seed=1)) + "\n", encoding="utf-8")
    app = _app(corpus=str(names))
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "names.txt")
        stats = text_of(app, "#corpus-stats")
        assert "items" in stats and "duplicates" in stats
        await pilot.press("f3")
        assert app.query_one("#items").value is True
        command = app.query_one("#train-form").command()
        assert command.train["items"] is True and command.train["batching"] == "random"


@pytest.mark.parametrize("size", [(160, 48), (80, 24)])
async def test_every_metric_shows_its_value_under_its_name(size: tuple[int, int]) -> None:
    """The metrics grid once had one column fewer than metrics: the last wrapped onto a
    second row and every value line was clipped away, leaving only the names."""
    from charlm_tui.widgets.metrics import METRICS, Metric, MetricsRow

    app = _app(corpus="markov")
    async with app.run_test(size=size) as pilot:
        await _loaded(pilot, "markov")
        await pilot.press("f3")
        row = app.query_one(MetricsRow)
        row.set(**{key: f"v{i}" for i, (key, _) in enumerate(METRICS)})
        await pilot.pause()
        for metric in app.query(Metric):
            assert metric.region.height == 2, (metric.id, metric.region)
            assert metric.region.width >= 6, (metric.id, metric.region)
        for i, metric in enumerate(app.query(Metric)):
            assert str(metric.render()).endswith(f"[b]v{i}[/]")
