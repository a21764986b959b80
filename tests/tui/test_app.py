"""Pilot tests of each flow, with the engine in a thread (fast) unless the process matters."""

from __future__ import annotations

import functools
import http.server
import os
import signal
import threading
from pathlib import Path

import pytest

from charlm_tui.app import CharLMApp
from charlm_tui.panes.corpus import CorpusPane
from charlm_tui.panes.generation import GenerationPane
from charlm_tui.panes.training import TrainingPane
from charlm_tui.widgets.knobs import KnobBar
from charlm_tui.widgets.next_char import NextCharPanel
from charlm_tui.widgets.token_view import TokenView
from tests.tui.waiting import text_of, wait_until

SIZE = (120, 36)


def _app(**kwargs) -> CharLMApp:
    return CharLMApp(engine_mode=kwargs.pop("engine_mode", "thread"), **kwargs)


async def _loaded(pilot, name: str) -> None:
    pane = pilot.app.query_one(CorpusPane)
    await wait_until(pilot, lambda: pane.loaded_name == name, what=f"corpus {name}")


async def _train(pilot, max_steps: str = "50") -> TrainingPane:
    """Train the tiny preset on the loaded corpus from the Training tab, until done."""
    app = pilot.app
    await pilot.press("f3")
    app.query_one("#preset").value = "tiny"
    await pilot.pause()
    app.query_one("#f-max_steps").value = max_steps
    app.query_one("#f-eval_interval").value = "25"
    await pilot.press("f5")
    pane = app.query_one(TrainingPane)
    await wait_until(pilot, lambda: pane.state in ("done", "failed"), 120, "training to end")
    assert pane.state == "done"
    return pane


async def test_opens_on_default_corpus_and_picks_another() -> None:
    app = _app()
    async with app.run_test(size=SIZE) as pilot:
        assert app.query_one("#tabs").active == "corpus"
        await _loaded(pilot, "verse")
        assert "65,276" in text_of(app, "#corpus-stats")
        assert "entropy" in text_of(app, "#corpus-stats")
        assert "most common" in text_of(app, "#corpus-common")
        assert "verse" in app.sub_title
        options = app.query_one("#corpus-list")
        options.focus()
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        options.highlighted = ids.index("sample:markov")
        await pilot.press("enter")
        await _loaded(pilot, "markov")
        assert "vocabulary 10 symbols" in text_of(app, "#corpus-stats").replace("  ", " ")


async def test_bad_corpora_show_the_engine_message(tmp_path: Path) -> None:
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        path_input = app.query_one("#corpus-path")
        path_input.focus()
        path_input.value = str(tmp_path / "nope.txt")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.query_one("#corpus-error").display)
        assert "no such file" in text_of(app, "#corpus-error")
        path_input.value = str(binary)
        await pilot.press("enter")
        await wait_until(pilot, lambda: "binary" in text_of(app, "#corpus-error"), 20)
        assert "could not load" in text_of(app, "#corpus-title")
        assert any("binary" in n.message for n in app._notifications)  # also notified
        # The previous corpus stays loaded.
        assert app.query_one(CorpusPane).loaded_name == "markov"


async def test_download_shows_progress_then_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tinyshakespeare from a local server (its sha256 patched): progress, then stats."""
    import hashlib

    from engine.data import samples

    body = ("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 4000).encode()
    served = tmp_path / "served"
    served.mkdir()
    (served / "input.txt").write_bytes(body)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    manifest = dict(samples._manifest())
    manifest["corpora"] = [
        {**c, "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
        if c["name"] == "tinyshakespeare"
        else c
        for c in manifest["corpora"]
    ]
    monkeypatch.setattr(samples, "_manifest", lambda: manifest)
    monkeypatch.setenv("CHARLM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(
        "CHARLM_URL_TINYSHAKESPEARE", f"http://127.0.0.1:{server.server_port}/input.txt"
    )
    from engine.worker import protocol as p

    seen_progress: list[object] = []
    original = CorpusPane.on_engine_event

    def spy(self, message):
        if isinstance(message.event, p.DownloadProgress):
            seen_progress.append(message.event)
        return original(self, message)

    monkeypatch.setattr(CorpusPane, "on_engine_event", spy)
    try:
        app = _app(corpus="markov")
        async with app.run_test(size=SIZE) as pilot:
            await _loaded(pilot, "markov")
            pane = app.query_one(CorpusPane)
            pane.load("tinyshakespeare")

            await wait_until(pilot, lambda: pane.loaded_name == "tinyshakespeare", 30)
            assert seen_progress and seen_progress[-1].done == len(body)
            assert f"{len(body):,}" in text_of(app, "#corpus-stats")
            assert not app.query_one("#download").display
    finally:
        server.shutdown()


async def test_download_failure_is_shown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHARLM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CHARLM_URL_TINYSHAKESPEARE", "http://127.0.0.1:9/input.txt")
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        app.query_one(CorpusPane).load("tinyshakespeare")
        await wait_until(pilot, lambda: app.query_one("#corpus-error").display, 30)
        assert "could not download 'tinyshakespeare'" in text_of(app, "#corpus-error")


async def test_train_generate_and_turn_the_temperature_knob() -> None:
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        pane = await _train(pilot)
        assert app.query_one("#m-step").value == "50/50"
        assert float(app.query_one("#m-val").value.split()[0]) > 0
        assert "saved runs" in text_of(app, "#runs-label")
        runs = app.query_one("#runs")
        await wait_until(pilot, lambda: runs.option_count >= 1 and runs.get_option_at_index(0).id)
        assert pane.query_one("#loss-plot").train_points

        await pilot.press("f4")
        await pilot.pause()
        generation = app.query_one(GenerationPane)
        assert app.focused is app.query_one("#prompt")
        await pilot.press(*"abc")
        await pilot.press("enter")
        view = app.query_one(TokenView)
        await wait_until(pilot, lambda: len(view.data) == 200 and not generation.generating)
        assert app.focused is view  # knob keys work right away
        first = view.text
        assert set(first) <= set("abcdefgh .")
        assert "200 chars" in text_of(app, "#gen-status")

        await pilot.press("T")
        assert generation.values["temperature"] == pytest.approx(0.9)
        assert "0.90" in text_of(app, "#knobs")
        # auto-regenerate: same seed, new temperature, so a different text
        await wait_until(pilot, lambda: not generation.generating and view.text != first, 30)
        assert len(view.text) == 200

        # the cursor walks the output; the side panel shows the distribution there
        await wait_until(pilot, lambda: view.cursor == 199)
        await pilot.press("left", "left", "home")
        assert view.cursor == 0
        panel = app.query_one(NextCharPanel)
        assert panel.index == 0 and panel.entry[0] == view.text[0]
        assert "alternatives (1-9 branch)" in text_of(app, "#next-char")

        # while the prompt has focus, letters are text, not knobs
        await pilot.press("slash")
        assert app.focused is app.query_one("#prompt")
        await pilot.press("t", "k")
        assert app.query_one("#prompt").value == "abctk"
        assert generation.values["temperature"] == pytest.approx(0.9)
        assert generation.values["top_k"] == 0

        # strategy cycles, beam gives beam scores
        await pilot.press("escape")
        assert app.focused is view
        await pilot.press("s")
        assert generation.values["strategy"] == "beam"
        await pilot.press("a")  # auto off: press enter ourselves
        await pilot.press("enter")
        await wait_until(pilot, lambda: "beam scores" in text_of(app, "#gen-status"), 30)


async def test_pause_resume_stop() -> None:
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        await pilot.press("f3")
        app.query_one("#preset").value = "tiny"
        await pilot.pause()
        app.query_one("#f-max_steps").value = ""  # no limit: runs until stopped
        await pilot.press("f5")
        pane = app.query_one(TrainingPane)
        await wait_until(pilot, lambda: pane.state == "training", what="training")
        await wait_until(pilot, lambda: app.query_one("#m-step").value != "–")
        await pilot.press("f6")
        await wait_until(pilot, lambda: pane.state == "paused", what="paused")
        assert str(app.query_one("#pause").label) == "Resume"
        await pilot.press("f6")
        await wait_until(pilot, lambda: pane.state == "training", what="resumed")
        await pilot.press("f7")
        await wait_until(pilot, lambda: pane.state == "stopped", 60, "stopped")
        assert not app.query_one("#train").disabled


async def test_invalid_form_is_refused_before_the_engine() -> None:
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        await pilot.press("f3")
        app.query_one("#f-lr").value = "0"
        await pilot.press("f5")
        assert "learning rate must be above 0" in text_of(app, "#form-error")
        assert app.query_one(TrainingPane).state == "idle"
        assert app.focused is app.query_one("#f-lr")


async def test_help_screen_and_command_palette() -> None:
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        await pilot.press("f1")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        assert type(app.screen).__name__ == "Screen"
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.press(*"sample corpus: code")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await _loaded(pilot, "code")
        await pilot.press("f3")
        assert app.query_one("#tabs").active == "training"
        await pilot.press("f4")
        assert app.query_one("#tabs").active == "generate"


async def test_compare_view() -> None:
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        await _train(pilot, "30")
        await pilot.press("f4", "escape", "l", "l", "l", "l")  # length 200 -> 20
        assert app.query_one(GenerationPane).values["length"] == 20
        await pilot.press("c")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CompareScreen")
        screen = app.screen
        await wait_until(pilot, lambda: screen.done, 90, "the comparison")
        table = screen.query_one("#compare-table")
        assert table.row_count == 8
        assert len(screen.query(".compare-column")) == 8
        assert "chrf" not in table.columns  # a typed prompt not in the held-out split

        # h: a prompt cut from the held-out split, chrF against the text that follows it
        await pilot.press("h")
        await wait_until(pilot, lambda: screen.done and screen.reference is not None, 90, "chrF")
        root = Path(__file__).resolve().parents[2]
        corpus_text = (root / "sample_corpora" / "markov.txt").read_text(encoding="utf-8")
        assert screen.prompt + screen.reference in corpus_text[int(len(corpus_text) * 0.9) :]
        assert "chrf" in table.columns and table.row_count == 8
        scores = [float(table.get_cell(key, "chrf")) for key in table.rows]
        assert all(0.0 <= s <= 100.0 for s in scores) and max(scores) > 0
        cards = screen.query(".compare-column")
        assert len(cards) == 9 and cards[-1].border_title == "true continuation"
        assert "chrF against the true continuation" in text_of(screen, "#compare-title")
        await pilot.press("escape")
        assert type(app.screen).__name__ == "Screen"


async def test_engine_crash_is_shown_and_a_new_engine_starts() -> None:
    app = _app(corpus="markov", engine_mode="process")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        await wait_until(pilot, lambda: app.engine_state == "ready")
        old = app.engine.pid
        assert old is not None and old != os.getpid()
        # a corpus that is not the first one, to see it restored after the restart
        app.query_one(CorpusPane).load("verse")
        await _loaded(pilot, "verse")
        os.kill(old, signal.SIGKILL)
        await wait_until(
            pilot,
            lambda: any("SIGKILL" in n.message for n in app._notifications),
            30,
            "the crash notice",
        )
        await wait_until(pilot, lambda: app.engine.pid != old and app.engine_state == "ready", 60)
        title = lambda: text_of(app, "#corpus-title")  # noqa: E731
        await wait_until(pilot, lambda: "verse" in title() and "loading" not in title(), 30)
        new = app.engine.pid
    assert new is not None
    with pytest.raises(ProcessLookupError):
        os.kill(new, 0)


async def test_knob_bar_shows_every_knob() -> None:
    bar = KnobBar()
    text = bar.render().plain
    for label in ("strategy", "temp", "top-k", "top-p", "min-p", "rep", "beam", "len", "seed"):
        assert label in text


async def test_load_a_saved_run_and_continue_it() -> None:
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        pane = await _train(pilot, "30")
        runs = app.query_one("#runs")
        await wait_until(pilot, lambda: runs.option_count and runs.get_option_at_index(0).id)
        runs.focus()
        runs.highlighted = 0
        await pilot.pause()  # the focus handler highlights the first run too: let it settle
        await pilot.press("enter")
        await wait_until(pilot, lambda: "loaded a checkpoint" in text_of(app, "#train-state"))
        assert app.query_one("#m-step").value == "30"
        assert app.query_one("#resume").display and app.query_one("#resume").value
        assert app.query_one(TrainingPane).query_one("#loss-plot").val_points
        app.query_one("#f-max_steps").value = "40"
        await pilot.press("f5")
        await wait_until(pilot, lambda: pane.state in ("done", "failed"), 120)
        assert app.query_one("#m-step").value == "40/40"
        assert runs.option_count == 1  # the same run, continued


async def test_open_a_path_and_remember_it(tmp_path: Path) -> None:
    corpus = tmp_path / "poem.txt"
    corpus.write_text("roses are red\nviolets are blue\n" * 200)
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "FileOpenScreen")
        await pilot.press("escape")
        assert type(app.screen).__name__ == "Screen"
        path_input = app.query_one("#corpus-path")
        path_input.focus()
        path_input.value = str(corpus)
        await pilot.press("enter")
        await _loaded(pilot, "poem.txt")
        options = app.query_one("#corpus-list")
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert f"path:{corpus}" in ids


async def test_checkpoint_from_the_command_line_brings_its_corpus(tmp_path: Path) -> None:
    from engine.config.train import TrainConfig
    from engine.data.corpus import load_corpus
    from engine.models import make_config
    from engine.training.trainer import Trainer

    run = tmp_path / "run"
    config = TrainConfig(
        batch_size=4, seq_len=16, max_steps=5, eval_interval=5, eval_chars=256, final_eval=False
    )
    model = make_config("gru", embed_dim=8, hidden_size=16, num_layers=1)
    Trainer(load_corpus("markov"), model, config, out_dir=run).run()
    app = _app(checkpoint=str(run))  # the default corpus (verse) is not markov
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        await wait_until(pilot, lambda: app.query_one("#resume").display, 30)
        assert app.query_one(GenerationPane).has_model
        assert "step 5" in text_of(app, "#gen-status")


async def test_training_status_names_the_precision_and_a_partial_evaluation() -> None:
    """The status line says which precision trains and why, and "whole held-out split" only
    when every held-out character was scored."""
    from engine.worker import protocol as p

    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        pane = app.query_one(TrainingPane)
        pane._got_StatusEvent(p.StatusEvent("training", "fp32 (no native bf16 on this CPU)"))
        await pilot.pause()
        assert "fp32 (no native bf16 on this CPU)" in text_of(app, "#train-state")
        result = {
            "val_loss": 1.61,
            "val_bpc": 2.32,
            "val_perplexity": 5.0,
            "val_chars": 29_940,
            "val_split_chars": 111_539,
            "partial_eval": True,
            "stopped_by": "time_budget",
            "steps": 300,
            "elapsed_s": 60.0,
        }
        pane._got_TrainFinished(p.TrainFinished(result))
        await pilot.pause()
        status = text_of(app, "#train-state")
        assert "whole" not in status
        assert "29,940 of 111,539 held-out chars" in status
        whole = dict(result, val_chars=111_539, partial_eval=False)
        pane._got_TrainFinished(p.TrainFinished(whole))
        await pilot.pause()
        assert "on the whole held-out split" in text_of(app, "#train-state")
