"""Checkpoints: exact round trips, last/best links, atomic writes, no pickle, clear errors."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import random
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch

from engine.data.corpus import Vocab
from engine.errors import CheckpointError
from engine.runs.checkpoint import (
    FORMAT_VERSION,
    MODEL_FILE,
    STATE_FILE,
    TRAINER_FILE,
    load_checkpoint,
    optimizer_tensors,
    resolve_checkpoint_dir,
    restore_optimizer,
    save_checkpoint,
)
from tests.helpers import MODEL_TYPES, assert_one_line, tiny_model

VOCAB = Vocab(list("\n abcdefghi"))  # 11 characters


def save(run_dir: Path, model, step: int, tags=("last",), **extra) -> Path:
    return save_checkpoint(
        run_dir, model=model, vocab=VOCAB, meta={"step": step, **extra}, tags=tags
    )


def logits_of(model) -> torch.Tensor:
    x = torch.tensor([[0, 3, 1, 4, 1, 5, 9, 2, 6, 5]])
    with torch.no_grad():
        return model(x)[0]


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """A run directory with one complete checkpoint (lstm, with trainer state)."""
    run = tmp_path / "run"
    model = tiny_model("lstm", len(VOCAB))
    save_checkpoint(
        run,
        model=model,
        vocab=VOCAB,
        meta={"step": 7},
        trainer_tensors={"rng.cpu": torch.get_rng_state(), "x": torch.arange(5.0)},
        tags=("last", "best"),
    )
    return run


# ----- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_round_trip_gives_identical_logits(tmp_path: Path, model_type: str) -> None:
    model = tiny_model(model_type, len(VOCAB), seed=4)
    history = [{"step": 5, "val_loss": 1.25}]
    path = save(tmp_path / "run", model, 5, tags=("last", "best"), history=history, note="ünï")
    loaded = load_checkpoint(path)
    assert loaded.path == path
    assert type(loaded.model) is type(model)
    assert loaded.model.config == model.config
    assert not loaded.model.training
    assert loaded.vocab == VOCAB
    assert loaded.step == 5
    assert loaded.history == history
    assert loaded.meta["note"] == "ünï"
    assert torch.equal(logits_of(loaded.model), logits_of(model))
    for (name, a), (_, b) in zip(
        model.state_dict().items(), loaded.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    if model_type == "transformer":  # weight tying survives the round trip
        assert loaded.model.head.weight is loaded.model.wte.weight


def test_trainer_tensors_round_trip(saved: Path) -> None:
    plain = load_checkpoint(saved)
    assert plain.trainer_tensors == {}, "trainer state only on request"
    loaded = load_checkpoint(saved, with_trainer=True)
    assert set(loaded.trainer_tensors) == {"rng.cpu", "x"}
    assert loaded.trainer_tensors["rng.cpu"].dtype == torch.uint8
    assert torch.equal(loaded.trainer_tensors["x"], torch.arange(5.0))


def test_optimizer_state_round_trips_without_pickle(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    model = tiny_model("gru", len(VOCAB))  # eval mode: no dropout, same maths each pass
    groups = [
        {"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=1e-2, betas=(0.9, 0.99))
    x = torch.randint(0, len(VOCAB), (2, 9))
    for _ in range(3):
        optimizer.zero_grad()
        model(x)[0].logsumexp(-1).mean().backward()
        optimizer.step()
    tensors, saved_groups = optimizer_tensors(optimizer)
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    # Through the disk, as a checkpoint does: safetensors and JSON.
    save_file(tensors, str(tmp_path / "optim.safetensors"))
    tensors = load_file(str(tmp_path / "optim.safetensors"))
    saved_groups = json.loads(json.dumps(saved_groups))

    twin = tiny_model("gru", len(VOCAB))
    twin.load_state_dict(model.state_dict())
    twin_groups = [
        {"params": [p for p in twin.parameters() if p.dim() >= 2], "weight_decay": 0.5},
        {"params": [p for p in twin.parameters() if p.dim() < 2], "weight_decay": 0.5},
    ]
    restored = torch.optim.AdamW(twin_groups, lr=1.0)
    restore_optimizer(restored, tensors, saved_groups)
    assert restored.param_groups[0]["weight_decay"] == 0.1
    assert restored.param_groups[0]["betas"] == (0.9, 0.99)
    for a, b in ((model, optimizer), (twin, restored)):
        b.zero_grad()
        a(x)[0].logsumexp(-1).mean().backward()
        b.step()
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)


# ----- last and best --------------------------------------------------------------------


def test_last_and_best_links(tmp_path: Path) -> None:
    run = tmp_path / "run"
    model = tiny_model("lstm", len(VOCAB))
    first = save(run, model, 100, tags=("last", "best"))
    second = save(run, model, 200, tags=("last",))
    assert (run / "last").is_symlink() and (run / "best").is_symlink()
    assert os.readlink(run / "last") == second.name, "relative links: the run can move"
    assert os.readlink(run / "best") == first.name
    assert load_checkpoint(run).step == 100  # best by default
    assert load_checkpoint(run, prefer="last").step == 200
    assert resolve_checkpoint_dir(run, prefer="last") == second.resolve()
    assert load_checkpoint(second).step == 200  # a checkpoint directory itself
    assert load_checkpoint(second / MODEL_FILE).step == 200  # or a file inside it

    third = save(run, model, 300, tags=("last", "best"))
    remaining = sorted(p.name for p in run.iterdir() if not p.is_symlink())
    assert remaining == [third.name], "checkpoints nothing points at are pruned"

    moved = tmp_path / "moved"
    shutil.move(run, moved)
    assert load_checkpoint(moved, prefer="last").step == 300


def test_falls_back_when_a_link_is_dangling(tmp_path: Path) -> None:
    run = tmp_path / "run"
    model = tiny_model("lstm", len(VOCAB))
    best = save(run, model, 1, tags=("last", "best"))
    last = save(run, model, 2, tags=("last",))
    shutil.rmtree(last)
    assert load_checkpoint(run, prefer="last").step == 1
    (run / "last").unlink()
    (run / "best").unlink()
    assert load_checkpoint(run).path == best  # the newest complete step-* directory


# ----- atomic writes --------------------------------------------------------------------


def _save_forever(run_dir: str, first_step: int) -> None:  # runs in a forked child
    torch.set_num_threads(1)
    model = tiny_model("lstm", len(VOCAB), embed_dim=32, hidden_size=96)
    step = first_step
    while True:
        with torch.no_grad():
            for param in model.parameters():
                param.fill_(float(step))
        save_checkpoint(
            Path(run_dir),
            model=model,
            vocab=VOCAB,
            meta={"step": step},
            trainer_tensors={"marker": torch.full((4096,), float(step))},
            tags=("last", "best") if step % 3 == 0 else ("last",),
        )
        step += 1


def _assert_consistent(run: Path, prefer: str) -> int:
    """The checkpoint loads and every file in it belongs to the same save."""
    loaded = load_checkpoint(run, prefer=prefer, with_trainer=True)
    step = loaded.step
    for param in loaded.model.parameters():
        assert torch.all(param == float(step))
    assert torch.all(loaded.trainer_tensors["marker"] == float(step))
    return step


@pytest.mark.slow
@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_killing_a_save_at_random_moments_never_breaks_last(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _save_forever_once = tiny_model("lstm", len(VOCAB), embed_dim=32, hidden_size=96)
    with torch.no_grad():
        for param in _save_forever_once.parameters():
            param.fill_(0.0)
    save_checkpoint(
        run,
        model=_save_forever_once,
        vocab=VOCAB,
        meta={"step": 0},
        trainer_tensors={"marker": torch.zeros(4096)},
        tags=("last", "best"),
    )
    context = multiprocessing.get_context("fork")
    rng = random.Random(1234)
    previous = 0
    for round_ in range(1, 9):
        child = context.Process(target=_save_forever, args=(str(run), round_ * 100_000))
        child.start()
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL
        step = _assert_consistent(run, "last")
        assert step >= previous, "last never goes back"
        _assert_consistent(run, "best")
        previous = step
    assert previous > 100_000, "the children did save"
    # The next save cleans up whatever the kills left half-written.
    save_checkpoint(
        run,
        model=_save_forever_once,
        vocab=VOCAB,
        meta={"step": 0},
        trainer_tensors={"marker": torch.zeros(4096)},
        tags=("last", "best"),
    )
    leftovers = [p.name for p in run.iterdir() if p.name.startswith(".")]
    assert leftovers == []


# ----- never unpickle -------------------------------------------------------------------


class _Payload:
    """Unpickling this object writes the marker file: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _pickle_bytes(marker: Path, kind: str, where: Path) -> bytes:
    if kind == "pickle":
        return pickle.dumps({"weight": _Payload(marker)})
    scratch = where / "scratch.pt"
    torch.save({"weight": _Payload(marker)}, scratch)  # a zip with a pickle inside
    data = scratch.read_bytes()
    scratch.unlink()
    return data


def test_the_payload_is_live(tmp_path: Path) -> None:
    """Control: these bytes really do run code when unpickled."""
    marker = tmp_path / "control-marker"
    pickle.loads(_pickle_bytes(marker, "pickle", tmp_path))
    assert marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "torch-zip"])
@pytest.mark.parametrize("target", [MODEL_FILE, TRAINER_FILE])
def test_a_crafted_pickle_is_refused_not_loaded(
    saved: Path, tmp_path: Path, kind: str, target: str
) -> None:
    marker = tmp_path / "pwned-marker"
    directory = resolve_checkpoint_dir(saved)
    (directory / target).write_bytes(_pickle_bytes(marker, kind, tmp_path))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(saved, with_trainer=True)
    assert_one_line(info.value, target)
    assert not marker.exists()


def test_a_pt_file_instead_of_safetensors_is_refused(saved: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned-marker"
    directory = resolve_checkpoint_dir(saved)
    (directory / MODEL_FILE).unlink()
    for name in ("model.pt", "pytorch_model.bin", "model.pkl"):
        (directory / name).write_bytes(_pickle_bytes(marker, "torch-zip", tmp_path))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(saved)
    assert_one_line(info.value, "missing")
    assert not marker.exists()


# ----- clear errors ---------------------------------------------------------------------


def _state(saved: Path) -> tuple[Path, dict]:
    directory = resolve_checkpoint_dir(saved)
    return directory, json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "nowhere")
    assert_one_line(info.value, "nowhere", "does not exist")


def test_directory_without_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path)
    assert_one_line(info.value, "no checkpoint")


def test_truncated_weights(saved: Path) -> None:
    directory = resolve_checkpoint_dir(saved)
    weights = directory / MODEL_FILE
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(saved)
    assert_one_line(info.value, MODEL_FILE, "damaged")


def test_truncated_trainer_state(saved: Path) -> None:
    directory = resolve_checkpoint_dir(saved)
    trainer = directory / TRAINER_FILE
    trainer.write_bytes(trainer.read_bytes()[:40])
    load_checkpoint(saved)  # the model alone still loads
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(saved, with_trainer=True)
    assert_one_line(info.value, TRAINER_FILE, "damaged")


@pytest.mark.parametrize(
    "content",
    [
        '{"hello": "world", "numbers": [1, 2, 3]}',
        "[1, 2, 3]",
        '"just a string"',
        '{"format": "someone-elses-checkpoint", "version": 1}',
    ],
)
def test_foreign_state_file(saved: Path, content: str) -> None:
    directory, _ = _state(saved)
    (directory / STATE_FILE).write_text(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(saved)
    assert_one_line(info.value, "not a charlm-tui checkpoint")


def test_state_file_that_is_not_json(saved: Path) -> None:
    directory, _ = _state(saved)
    (directory / STATE_FILE).write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff garbage")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(saved)
    assert_one_line(info.value, "damaged")


def test_state_file_that_is_a_directory(saved: Path) -> None:
    directory, _ = _state(saved)
    (directory / STATE_FILE).unlink()
    (directory / STATE_FILE).mkdir()
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(directory)
    assert_one_line(info.value, STATE_FILE)


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 99])
def test_newer_format_version(saved: Path, version: int) -> None:
    directory, state = _state(saved)
    state["version"] = version
    (directory / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(saved)
    assert_one_line(info.value, "newer", "upgrade")


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s.pop("model"),
        lambda s: s.pop("vocab"),
        lambda s: s.__setitem__("vocab", ["b", "a"]),
        lambda s: s.__setitem__("vocab", [1, 2]),
        lambda s: s["model"].__setitem__("vocab_size", 99),
        lambda s: s["model"].__setitem__("model_type", "mamba"),
        lambda s: s["model"].__setitem__("hidden_size", "wide"),
        lambda s: s["model"].__setitem__("hidden_size", -3),
        lambda s: s["model"].__setitem__("hidden_size", 32),  # weights no longer fit
        lambda s: s.__setitem__("model", "lstm"),
    ],
)
def test_damaged_metadata(saved: Path, damage) -> None:
    directory, state = _state(saved)
    damage(state)
    (directory / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(saved)
    assert_one_line(info.value)
    assert str(directory) in str(info.value)


def test_missing_weights_file(saved: Path) -> None:
    directory, _ = _state(saved)
    (directory / MODEL_FILE).unlink()
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(saved)
    assert_one_line(info.value, MODEL_FILE, "missing")


def test_weights_of_another_architecture(saved: Path, tmp_path: Path) -> None:
    other = save(tmp_path / "other", tiny_model("gru", len(VOCAB)), 1)
    directory, _ = _state(saved)
    shutil.copy(other / MODEL_FILE, directory / MODEL_FILE)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(saved)
    assert_one_line(info.value, MODEL_FILE)
