"""Writing with the model (fork, continue, siblings, parent, export), the focus rules,
keys pressed while the engine starts, and the state restored on the next start."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from charlm_tui.app import CharLMApp
from charlm_tui.panes.corpus import CorpusPane
from charlm_tui.panes.generation import GenerationPane
from charlm_tui.panes.training import TrainingPane
from charlm_tui.state.app_state import state_file
from charlm_tui.widgets.next_char import NextCharPanel
from charlm_tui.widgets.token_view import TokenView
from engine.worker.client import EngineClient
from tests.tui.waiting import start_choice_shown, text_of, wait_until

SIZE = (120, 36)
LENGTH = 20  # the length knob after pressing `l` four times from 200


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few steps of a small GRU on markov: enough to generate from."""
    from engine.config.train import TrainConfig
    from engine.data.corpus import load_corpus
    from engine.models import make_config
    from engine.training.trainer import Trainer

    run = tmp_path_factory.mktemp("writing") / "run"
    config = TrainConfig(
        batch_size=4, seq_len=16, max_steps=5, eval_interval=5, eval_chars=256, final_eval=False
    )
    model = make_config("gru", embed_dim=8, hidden_size=16, num_layers=1)
    Trainer(load_corpus("markov"), model, config, out_dir=run).run()
    return run


async def _generated(pilot, pane: GenerationPane) -> None:
    await wait_until(pilot, lambda: not pane.generating and pane.branches.get() is not None, 30)


async def test_fork_continue_siblings_parent_and_export(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = CharLMApp(corpus="markov", checkpoint=str(run_dir), engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(GenerationPane)
        await wait_until(pilot, lambda: pane.has_model, 30)
        await pilot.press("f4", "escape", "l", "l", "l", "l")
        assert pane.values["length"] == LENGTH
        await pilot.press("slash", *"ab", "enter")
        await _generated(pilot, pane)
        view = app.query_one(TokenView)
        root = pane.branches.get()
        assert len(root.text) == LENGTH and view.text == root.text
        assert "generation 1/1" in text_of(app, "#gen-status")

        # fork at the 6th character with the 2nd alternative: the text before it is kept
        await pilot.press("home", *["right"] * 5)
        assert view.cursor == 5
        second = view.entry(5)[3][1][0]
        await pilot.press("2")
        await _generated(pilot, pane)
        branch = pane.branches.get()
        assert branch.parent == root.id and branch.fork_at == 5
        assert branch.text[:5] == root.text[:5] and branch.text[5] == second
        assert len(branch.text) == 5 + 1 + LENGTH  # continued with the current knobs
        assert view.text == branch.text
        assert "branch 1/1 at char 6" in text_of(app, "#gen-status")

        # another branch at the same place, picked on the panel: tab, down twice, enter
        await pilot.press("home", *["right"] * 5)
        panel = app.query_one(NextCharPanel)
        third_choice = view.entry(5)[3][2][0]
        await pilot.press("tab")
        assert panel.has_focus and panel.selected == 0
        await pilot.press("down", "down")
        assert panel.selected == 2
        assert "enter branches" in str(panel.render())
        await pilot.press("enter")
        await _generated(pilot, pane)
        third = pane.branches.get()
        assert third.parent == root.id and third.fork_at == 5 and third.text[5] == third_choice
        assert view.has_focus and "branch 2/2" in text_of(app, "#gen-status")
        await pilot.press("left_square_bracket")
        assert pane.branches.current == branch.id and view.text == branch.text
        assert "branch 1/2 at char 6" in text_of(app, "#gen-status")
        await pilot.press("u")
        assert pane.branches.current == root.id and view.text == root.text
        await pilot.press("u")  # no parent of a generation: nothing moves
        assert pane.branches.current == root.id
        await pilot.press("y")
        assert pane.branches.current == branch.id

        # export: the text, and the tree with generate --json's field names
        await pilot.press("x")
        texts = list(tmp_path.glob("charlm-text-*.txt"))
        assert len(texts) == 1 and texts[0].read_text() == "ab" + branch.text
        await pilot.press("X")
        trees = list(tmp_path.glob("charlm-branches-*.json"))
        data = json.loads(trees[0].read_text())
        assert len(data["branches"]) == 3 and data["current"] == branch.id
        record = next(r for r in data["branches"] if r["id"] == branch.id)
        assert record["prompt"] == "ab" and record["samples"] == [branch.text]
        assert record["params"]["length"] == LENGTH and "seed" in record["params"]
        assert any(str(texts[0]) in n.message for n in app._notifications)


async def test_digits_type_into_inputs_and_pane_keys_work_everywhere() -> None:
    app = CharLMApp(corpus="markov", engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        tabs = app.query_one("#tabs")
        await pilot.press("f3")
        assert app.query_one("#save").disabled  # nothing to save before a model exists
        field = app.query_one("#f-time_budget")
        field.focus()
        await pilot.pause()
        field.value = "60"
        await pilot.press("end", "3", "1", "2")
        assert field.value == "60312" and tabs.active == "training"
        await pilot.press("escape")
        assert app.focused is not field and tabs.active == "training"
        path = app.query_one("#corpus-path")
        for start, focus in (("corpus", path), ("training", field), ("generate", "#prompt")):
            for key, pane in (
                ("f2", "corpus"),
                ("f3", "training"),
                ("f4", "generate"),
                ("f10", "inspect"),
                ("alt+2", "training"),
            ):
                app.query_one("#tabs").active = start
                await pilot.pause()
                widget = app.query_one(focus) if isinstance(focus, str) else focus
                widget.focus()
                await pilot.pause()
                await pilot.press(key)
                assert tabs.active == pane, (start, key)
        app.query_one("#tabs").active = "corpus"
        await pilot.pause()
        path.focus()
        await pilot.pause()
        await pilot.press("end", "2", "3")
        assert path.value.endswith("23") and tabs.active == "corpus"


async def test_keys_pressed_while_the_engine_starts_wait_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_start = EngineClient.start
    gate = asyncio.Event()

    async def slow_start(self) -> None:
        await gate.wait()  # the engine takes as long as the test says
        await real_start(self)

    monkeypatch.setattr(EngineClient, "start", slow_start)
    app = CharLMApp(corpus="markov", engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        app.query_one("#preset").value = "tiny"
        await pilot.pause()
        app.query_one("#f-max_steps").value = "5"
        assert app.engine_state == "starting" and not app.engine.running
        await pilot.press("f5")  # right after launch
        pane = app.query_one(TrainingPane)
        assert pane.state == "starting"
        assert any("engine is starting" in n.message for n in app._notifications)
        gate.set()
        await wait_until(pilot, lambda: pane.state in ("done", "failed"), 60, "training")
        assert pane.state == "done"
        assert not any(n.severity == "error" for n in app._notifications)


async def test_corpus_form_knobs_and_prompt_are_restored(tmp_path: Path) -> None:
    app = CharLMApp(corpus="code", engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.query_one(CorpusPane).loaded_name == "code", 30)
        await pilot.press("f3")
        app.query_one("#preset").value = "tiny"
        await pilot.pause()
        app.query_one("#f-time_budget").value = "33"
        await pilot.press("f4")
        generation = app.query_one(GenerationPane)
        await wait_until(pilot, lambda: generation.vocab_size > 0, 30, "the pane's corpus")
        app.query_one("#prompt").value = "def "
        await pilot.press("escape", "T", "k")
        top_k = app.query_one(GenerationPane).values["top_k"]
        assert 0 < top_k < app.query_one(GenerationPane).vocab_size
        await pilot.press("ctrl+q")
    saved = json.loads(state_file().read_text())
    assert saved["corpus"] == "code" and saved["prompt"] == "def "

    again = CharLMApp(engine_mode="thread")  # no corpus on the command line
    async with again.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: again.query_one(CorpusPane).loaded_name == "code", 30)
        assert again.query_one("#preset").value == "tiny"
        assert again.query_one("#f-time_budget").value == "33"
        pane = again.query_one(GenerationPane)
        assert pane.values["temperature"] == pytest.approx(0.9) and pane.values["top_k"] == top_k
        assert again.query_one("#prompt").value == "def "


async def test_a_damaged_state_file_is_ignored_with_a_notice() -> None:
    state_file().write_text("{not json", encoding="utf-8")
    app = CharLMApp(engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert any("damaged" in n.message for n in app._notifications)
        await wait_until(pilot, lambda: app.query_one(CorpusPane).loaded_name == "verse", 30)


def test_knobs_turn_on_from_off_with_either_key() -> None:
    from charlm_tui.widgets.knobs import KNOB_BY_NAME

    top_k, min_p, rep = (KNOB_BY_NAME[n] for n in ("top_k", "min_p", "repetition_penalty"))
    assert top_k.step(0, -1, vocab_size=65) == 60  # below the vocabulary, not 100
    assert top_k.step(0, 1, vocab_size=10) == 8
    assert top_k.step(60, 1, vocab_size=65) == 100 and top_k.step(100, 1) == 0
    assert min_p.step(0.0, -1) == 0.01 and min_p.step(0.0, 1) == 0.01
    assert rep.step(1.0, -1) == 1.05
    assert KNOB_BY_NAME["top_p"].step(1.0, 1) == 0.98


def test_the_knob_bar_wraps_between_knobs_never_inside_one() -> None:
    from textual.content import Content

    from charlm_tui.widgets.knobs import wrap_items

    cells = [Content("s strategy sample"), Content("l/L len 200"), Content("d/D seed 1")]
    assert wrap_items(cells, 31).plain.split("\n") == [
        "s strategy sample   l/L len 200",
        "d/D seed 1",
    ]
    assert wrap_items(cells, 30).plain.split("\n") == [
        "s strategy sample",
        "l/L len 200   d/D seed 1",
    ]
    assert wrap_items(cells, 200).plain == "s strategy sample   l/L len 200   d/D seed 1"
    for width in range(8, 60):  # every line is whole cells
        for line in wrap_items(cells, width).plain.split("\n"):
            assert all(part in {c.plain for c in cells} for part in line.split("   "))


async def test_save_waits_for_a_model_starting_over_asks_and_runs_highlight(
    run_dir: Path,
) -> None:
    app = CharLMApp(corpus="markov", checkpoint=str(run_dir), engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(TrainingPane)
        await wait_until(pilot, lambda: pane.has_model, 30)
        await wait_until(pilot, lambda: app.query_one("#resume").display, 30)
        assert not app.query_one("#save").disabled
        await pilot.press("f3")
        app.query_one("#preset").value = "tiny"
        await pilot.pause()
        app.query_one("#f-max_steps").value = "3"
        app.query_one("#resume").value = False  # a new run over a loaded model
        await pilot.press("f5")  # asks: continue / new run / cancel
        await start_choice_shown(pilot)
        assert pane.state == "idle"
        await pilot.press("n")
        await wait_until(pilot, lambda: pane.state in ("done", "failed"), 60, "training")
        assert "F5: continue this run or start a new one" in text_of(app, "#train-state")
        runs = app.query_one("#runs")
        await wait_until(pilot, lambda: runs.option_count and runs.get_option_at_index(0).id)
        runs.focus()
        await pilot.pause()
        assert runs.highlighted == 0


def test_step_ticks_are_whole_numbers() -> None:
    from charlm_tui.widgets.metrics import step_ticks

    assert step_ticks(1, 30.5) == [10, 20, 30]
    for lo, hi in ((1, 30.5), (0, 7), (100, 100), (3, 12_345), (0.5, 1.5)):
        ticks = step_ticks(lo, hi)
        assert ticks and all(isinstance(t, int) for t in ticks) and len(ticks) <= 5
        assert all(lo - 1 <= t <= hi + 1 for t in ticks)


async def test_the_file_browser_goes_up_to_the_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textual.widgets import DirectoryTree

    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "poem.txt").write_text("roses are red\n" * 50)
    monkeypatch.chdir(inner)
    app = CharLMApp(corpus="markov", engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "FileOpenScreen")
        tree = app.screen.query_one(DirectoryTree)
        assert Path(tree.path) == inner
        await pilot.press("backspace")
        assert Path(tree.path) == tmp_path
        assert str(tmp_path) in text_of(app.screen, "#file-current")


async def test_the_form_has_a_random_seed_and_presets_have_plain_names() -> None:
    from charlm_tui.panes.training_form import TrainForm
    from engine.config.presets import PRESET_NAMES, preset

    assert "notebook" in PRESET_NAMES and "seed" not in PRESET_NAMES
    assert preset("lstm", "seed") == preset("lstm", "notebook")  # old scripts still work
    app = CharLMApp(corpus="markov", engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        form = app.query_one(TrainForm)
        assert form.preset_name == "notebook"
        assert "seed" not in form.command().train  # empty: the training default
        app.query_one("#f-seed").value = "7"
        assert form.command().train["seed"] == 7
        app.query_one("#f-seed").value = "-1"
        assert "random seed must be at least 0" in form.command()
