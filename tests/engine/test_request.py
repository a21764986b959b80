"""One training request, one resolution (engine/training/request.py), and the size and
regularisation the data and the budget ask for (engine/config/sizing.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import sizing
from engine.config.presets import preset
from engine.data.corpus import Corpus, load_corpus
from engine.errors import ConfigError, UserError
from engine.training.request import (
    TrainRequest,
    check_out_dir,
    form_request,
    resolve_training,
)
from tests.helpers import write_markov

CPU_TRAIN = preset("lstm", "cpu")[1]  # what the app's form shows for the preset

SHAKESPEARE_TRAIN = 1_003_854  # 90% of tinyshakespeare's 1,115,394 chars
NAMES_TRAIN = 207_000  # 90% of a ~230 KB list of ~32k names
EPYC_256 = 28_800.0  # the AVX2 EPYC's measured training chars/s, 256 wide (fp32)


# ----- the pure function: epochs decide ------------------------------------------------


def test_a_large_corpus_read_a_few_times_is_left_alone() -> None:
    """tinyshakespeare in 120 s: 3 epochs on the EPYC's 256, 6 on an AMX Xeon's 512."""
    for rate in (EPYC_256, 54_000.0):
        fit = sizing.fit_to_data(SHAKESPEARE_TRAIN, 108.0, rate)
        assert not fit.regularised and fit.dropout == fit.weight_decay == 0.0
        assert fit.epochs < sizing.FEW_EPOCHS
    assert sizing.fit_to_data(SHAKESPEARE_TRAIN, 108.0, EPYC_256).reason(0.0, 0.0) == (
        "regularisation: the preset's (3.1 epochs of 1.0M training chars: "
        "too few to learn it by heart)"
    )


def test_a_names_list_read_many_times_is_capped_and_regularised() -> None:
    some = sizing.fit_to_data(NAMES_TRAIN, 108.0, EPYC_256)  # 15 epochs
    assert (some.width_cap, some.dropout, some.weight_decay, some.weight_drop) == (
        sizing.SOME_REGULARISATION
    )
    assert some.reason(0.1, 0.1) == (
        "dropout 0.1, weight decay 0.1 for 15.0 epochs of 207k training chars "
        "(a small corpus read many times is learnt by heart)"
    )
    strong = sizing.fit_to_data(NAMES_TRAIN, 108.0, 3 * EPYC_256)  # 45 epochs
    assert (strong.width_cap, strong.dropout, strong.weight_decay, strong.weight_drop) == (
        sizing.STRONG_REGULARISATION
    )
    assert strong.weight_drop > 0
    assert strong.reason(0.2, 0.1, 0.25) == (
        "dropout 0.2, weight decay 0.1, weight drop 0.25 for 45.1 epochs of 207k training "
        "chars (a small corpus read many times is learnt by heart)"
    )


def test_a_fit_raises_what_the_model_has_and_keeps_what_is_higher() -> None:
    from engine.config.train import TrainConfig
    from engine.models import make_config

    strong = sizing.fit_to_data(NAMES_TRAIN, 108.0, 3 * EPYC_256)
    lstm = make_config("lstm", vocab_size=30, dropout=0.5, weight_drop=0.0)
    train = TrainConfig(weight_decay=0.0)
    line = strong.apply(lstm, train)
    assert (lstm.dropout, lstm.weight_drop, train.weight_decay) == (0.5, 0.25, 0.1)
    assert line.startswith("dropout 0.5, weight decay 0.1, weight drop 0.25 for 45.1 epochs")
    transformer = make_config("transformer", vocab_size=30, dropout=0.0)
    line = strong.apply(transformer, TrainConfig(weight_decay=0.0))
    assert transformer.dropout == 0.2 and not hasattr(transformer, "weight_drop")
    assert "weight drop" not in line


def test_the_step_bound_counts_when_it_is_the_smaller_and_is_exact() -> None:
    fit = sizing.fit_to_data(NAMES_TRAIN, 108.0, EPYC_256, step_chars=100_000, estimated=True)
    assert fit.epochs == pytest.approx(100_000 / NAMES_TRAIN) and not fit.estimated
    timed = sizing.fit_to_data(NAMES_TRAIN, 108.0, EPYC_256, step_chars=10**9, estimated=True)
    assert timed.estimated and "an estimated 15.0 epochs" in timed.reason(0.2, 0.1)
    unknown = sizing.fit_to_data(NAMES_TRAIN, None, None)
    assert unknown.epochs is None and not unknown.regularised


def test_the_same_inputs_always_give_the_same_answer() -> None:
    assert sizing.fit_to_data(50_000, 60.0, 20_000.0) == sizing.fit_to_data(50_000, 60.0, 20_000.0)


# ----- the width fitting reads the corpus too -----------------------------------------


def preset_like(width: int = 512) -> object:
    from engine.models import make_config

    return make_config("lstm", vocab_size=65, embed_dim=64, hidden_size=width, num_layers=1,
                       dropout=0.0)  # fmt: skip


def test_a_width_the_budget_could_train_is_passed_over_when_the_corpus_is_small() -> None:
    """A fast machine (the AMX Xeon's rate) keeps 512 on tinyshakespeare but not on a names
    list, which 512 would read 29 times: 384 instead, said in one line."""
    rates = {512: 54_000.0, 384: 70_000.0, 256: 1.0}
    kept = sizing.fit_width(preset_like(), 110.0, lambda c: rates[c.hidden_size],
                            SHAKESPEARE_TRAIN)  # fmt: skip
    assert kept.width == 512 and kept.note(512).startswith("width 512 kept")
    names = sizing.fit_width(preset_like(), 110.0, lambda c: rates[c.hidden_size], NAMES_TRAIN)
    assert names.width == 256  # 384 reads 37 epochs: the strong tier caps it at 256
    assert names.too_many_epochs.keys() == {512, 384}
    assert names.note(512).startswith("width 256 for this corpus and budget (512 wide: 29 epochs")
    rate, estimated = names.rate()
    assert estimated and rate == pytest.approx(
        70_000.0 * names.parameters[384] / names.parameters[256]
    )


def test_a_long_run_on_a_large_corpus_keeps_its_width_past_the_epoch_cap() -> None:
    """600 s at the AMX Xeon's rate read tinyshakespeare ~32 times, the strong tier, but its
    1.0M training chars are enough for 512 wide (1.22M parameters): 512 stays (measured:
    1.4245 against 1.4558 for 256). The names list, five times smaller, stays capped."""
    rates = {512: 54_000.0, 384: 70_000.0, 256: 1.0}
    kept = sizing.fit_width(preset_like(), 600.0, lambda c: rates[c.hidden_size],
                            SHAKESPEARE_TRAIN)  # fmt: skip
    epochs = sizing.fit_to_data(SHAKESPEARE_TRAIN, 600.0, rates[512]).epochs
    assert epochs is not None and epochs > sizing.MANY_EPOCHS
    assert kept.width == 512 and not kept.too_many_epochs
    assert kept.parameters[512] <= sizing.PARAMETERS_PER_TRAIN_CHAR * SHAKESPEARE_TRAIN
    names = sizing.fit_width(preset_like(), 600.0, lambda c: rates[c.hidden_size], NAMES_TRAIN)
    assert names.width == 256 and names.too_many_epochs.keys() == {512, 384}


# ----- the resolution ------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    path, _ = write_markov(tmp_path_factory.mktemp("request") / "markov.txt", 20_000)
    return load_corpus(str(path))


def cli_like(**settings: object) -> dict:
    return {"device": "cpu", "precision": "fp32", "compile": False, **settings}


def test_the_app_and_the_cli_resolve_the_same_form_to_the_same_config(corpus: Corpus) -> None:
    """The cpu preset with a budget: the form sends every field (the preset's width among
    them), the CLI only what was asked; both fit the width and the regularisation."""
    cli = resolve_training(TrainRequest("lstm", "cpu", cli_like(time_budget=60.0)), corpus)
    shown = {key: CPU_TRAIN[key] for key in ("lr", "batch_size", "seq_len", "max_steps")}
    form = form_request("lstm", "cpu", {"num_layers": 1, "hidden_size": 512},
                        {**shown, "time_budget": 60.0, "device": "cpu", "precision": "fp32",
                         "items": False})  # fmt: skip
    app = resolve_training(form, corpus)
    assert cli.config.fit_width and cli.config.fit_data
    assert (app.config.fit_width, app.config.fit_data) == (True, True)
    assert app.model_config == cli.model_config
    assert any(r.startswith("width and regularisation: fitted at the start") for r in cli.reasons)
    # An asked width is kept in both.
    asked = resolve_training(TrainRequest("lstm", "cpu", cli_like(time_budget=60.0,
                                                                  hidden_size=512)), corpus)  # fmt: skip
    assert not asked.config.fit_width


@pytest.mark.parametrize(
    ("preset_name", "settings", "fitted", "said"),
    [
        ("tiny", {"batch_size": 64, "seq_len": 128}, (0.2, 0.1, 0.25),
         "dropout 0.2, weight decay 0.1, weight drop 0.25 for 91.0 epochs"),
        ("notebook", {"dropout": 0.0}, (0.0, 0.1, 0.25),
         "dropout 0 (asked), weight decay 0.1, weight drop 0.25 for "),
        ("notebook", {"weight_drop": 0.0}, (0.2, 0.1, 0.0),
         "dropout 0.2, weight decay 0.1, weight drop 0 (asked) for "),
        ("tiny", {"fit_data": False}, (0.0, 0.0, 0.0), None),  # the whole fit off
    ],
    ids=["fitted", "dropout-asked", "weight-drop-asked", "fit-off"],
)  # fmt: skip
def test_a_steps_bound_run_on_a_small_corpus_is_regularised(
    corpus: Corpus, preset_name: str, settings: dict, fitted: tuple, said: str | None
) -> None:
    """200 steps of 64 x 128 chars read 18k training chars 91 times: dropout, decay and
    weight drop go up; one the user asked for stays as asked, and the rest still rise."""
    request = TrainRequest("lstm", preset_name, cli_like(max_steps=200, **settings))
    resolved = resolve_training(request, corpus)
    model, config = resolved.model_config, resolved.config
    assert (model.dropout, config.weight_decay, model.weight_drop) == fitted
    if said is not None:
        assert resolved.reasons[-1].startswith(said)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"device": "int8"}, "unknown device"),
        ({"precision": "int8"}, "unknown precision"),
        ({"num_labels": 3}, "num_labels"),
        ({"asked_regularisation": ["dropout"]}, "set those instead"),
        ({"vocab_size": 3}, "vocabulary"),
        ({"hidden_size": 65536}, "does not fit"),
        ({"seq_len": 4096}, "too short"),
        ({"val_fraction": 0.99999}, "too short"),
        ({"warp": 9}, "warp"),
    ],
)
def test_bad_requests_are_one_line(corpus: Corpus, settings: dict, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        resolve_training(TrainRequest("lstm", "tiny", cli_like(**settings)), corpus)


@pytest.mark.parametrize("out", ["", "  ", "/", "/..", "a\nb"])
def test_out_dirs_that_are_not_run_dirs_are_refused(out: str) -> None:
    with pytest.raises(ConfigError):
        check_out_dir(out)
    assert check_out_dir("runs/x") == Path("runs/x")


def saved_run(**train: object) -> dict:
    model = {"model_type": "lstm", "vocab_size": 10, "dropout": 0.0, "num_labels": 0,
             "embed_dim": 16, "hidden_size": 64, "num_layers": 1}  # fmt: skip
    return {"model": model, "train": {"batch_size": 16, "seq_len": 32, "lr": 0.01,
                                      "max_steps": 30, **train}}  # fmt: skip


def test_a_resume_keeps_its_own_settings_and_says_what_changes(corpus: Corpus) -> None:
    """A new preset's batch size and lr are not taken; the asked steps are, in one line."""
    request = TrainRequest(None, "cpu", cli_like(max_steps=45), resume=saved_run())
    resolved = resolve_training(request, corpus)
    assert (resolved.config.batch_size, resolved.config.lr) == (16, 0.01)
    assert resolved.config.max_steps == 45 and resolved.model_config.hidden_size == 64
    assert resolved.reasons == [
        "resuming with the run's own model and settings (--preset cpu not applied); "
        "changed: max_steps 30 -> 45"
    ]


def test_the_app_resuming_does_not_speak_of_its_forms_preset(corpus: Corpus) -> None:
    """The form always names a preset; resuming, the run's own settings are kept and the
    line says what changed, not the CLI's '--preset notebook not applied'."""
    run = saved_run()
    form = form_request("lstm", "notebook", {"num_layers": 1, "hidden_size": 64},
                        {**run["train"], "max_steps": 45, "items": False}, resume=run)  # fmt: skip
    resolved = resolve_training(form, corpus)
    assert resolved.config.max_steps == 45
    assert resolved.reasons == [
        "resuming with the run's own model and settings; changed: max_steps 30 -> 45"
    ]


@pytest.mark.parametrize(
    ("model_type", "settings", "fragment"),
    [
        ("gru", {}, "cannot become gru"),
        (None, {"hidden_size": 128}, "hidden_size is 64"),
        (None, {"tokens": "word"}, "cannot change tokens"),
        (None, {"val_fraction": 0.2}, "cannot change val_fraction"),
    ],
)
def test_a_resume_refuses_what_cannot_change(
    corpus: Corpus, model_type: str | None, settings: dict, fragment: str
) -> None:
    request = TrainRequest(model_type, None, cli_like(**settings), resume=saved_run())
    with pytest.raises(UserError, match=fragment):
        resolve_training(request, corpus)


def test_a_corpus_too_small_for_the_presets_windows_trains_shorter_ones(tmp_path: Path) -> None:
    """A few hundred chars: the windows shrink to the held-out split and batching goes
    random, each said in a line; an asked window is kept (and refused: it cannot fit)."""
    path = tmp_path / "small.txt"
    path.write_text("hello world, this is a tiny corpus.\n" * 8, encoding="utf-8")  # 288
    corpus = load_corpus(str(path))
    resolution = resolve_training(TrainRequest("lstm", "cpu", cli_like()), corpus)
    assert resolution.config.seq_len == 28  # the 29-char held-out split, less one
    assert resolution.config.batching == "random"
    said = "\n".join(resolution.reasons)
    assert "seq_len 128 -> 28: a 288-char corpus holds a 29-char split" in said
    rows = CPU_TRAIN["batch_size"]
    assert f"random batching: 259 training chars cannot hold {rows} streams of 29" in said
    with pytest.raises(UserError, match="too short: 288 chars gives a 29-char split"):
        resolve_training(TrainRequest("lstm", "cpu", cli_like(seq_len=64)), corpus)
    path.write_text("tiny\n", encoding="utf-8")  # nothing can be trained: one line, exit 2
    with pytest.raises(UserError, match="too short"):
        resolve_training(TrainRequest("lstm", "cpu", cli_like()), load_corpus(str(path)))


def test_a_label_too_short_says_what_would_fit(tmp_path: Path) -> None:
    from engine.data.labels import load_labelled_corpus

    folder = tmp_path / "lab"
    folder.mkdir()
    (folder / "big.txt").write_text("The cat sat on the mat and looked around.\n" * 400, "utf-8")
    (folder / "one.txt").write_text("just one line here\n", "utf-8")
    corpus = load_labelled_corpus(str(folder))
    request = TrainRequest("lstm", "cpu", cli_like(conditional=True))
    with pytest.raises(UserError) as info:
        resolve_training(request, corpus)
    message = str(info.value)
    assert "label 'one' is too short: 19 chars" in message and "\n" not in message
    assert "add text to it or leave it out, or train shorter windows (seq_len 16 fits" in message
