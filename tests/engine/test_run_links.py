"""Issue 19 in the engine: a run directory's links and special files, prune's tags, readers
racing a prune, weights of a foreign dtype, weights that cannot be read."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.config.train import TrainConfig
from engine.data.corpus import Vocab, load_corpus
from engine.errors import CheckpointError
from engine.runs.checkpoint import MODEL_FILE, STATE_FILE, load_checkpoint, save_checkpoint
from engine.training.trainer import Trainer
from tests.helpers import assert_one_line, tiny_config, tiny_model, write_markov

VOCAB = Vocab(list("\n abcdefghi"))


def save(run: Path, step: int, tags: tuple[str, ...]) -> Path:
    return save_checkpoint(
        run,
        model=tiny_model("lstm", len(VOCAB), seed=step),
        vocab=VOCAB,
        meta={"step": step},
        trainer_tensors={"rng.cpu": torch.get_rng_state()},
        tags=tags,
    )


# ----- prune resolves the tags before deciding -------------------------------------------


@pytest.mark.parametrize("style", ["absolute", "dot-relative", "through-the-run-link"])
def test_prune_keeps_what_best_names_however_the_link_is_written(
    tmp_path: Path, style: str
) -> None:
    run = tmp_path / "run"
    first = save(run, 1, ("last", "best"))
    if style == "absolute":
        text = str(first.resolve())
    elif style == "dot-relative":
        text = f"./{first.name}"
    else:  # through a link to the run directory itself
        (tmp_path / "alias").symlink_to(run)
        text = str(tmp_path / "alias" / first.name)
    (run / "best").unlink()
    os.symlink(text, run / "best")
    save(run, 2, ("last",))
    assert first.is_dir(), "the checkpoint `best` names was pruned"
    assert load_checkpoint(run, prefer="best").step == 1
    assert load_checkpoint(run, prefer="last").step == 2


def test_prune_never_deletes_outside_the_run(tmp_path: Path) -> None:
    other = save(tmp_path / "other", 7, ("last",))
    run = tmp_path / "run"
    save(run, 1, ("last", "best"))
    (run / "best").unlink()
    os.symlink(str(other), run / "best")
    os.symlink(str(other), run / "step-99999999-zzzzzz")  # a planted step-* link
    save(run, 2, ("last",))
    assert (other / MODEL_FILE).is_file() and load_checkpoint(other).step == 7


def test_a_tag_naming_something_outside_the_run_is_refused_by_readers(tmp_path: Path) -> None:
    other = save(tmp_path / "other", 7, ("last",))
    run = tmp_path / "run"
    save(run, 1, ("last",))
    os.symlink(str(other), run / "best")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(run, prefer="best")
    assert_one_line(info.value, "best", "inside the run")


# ----- readers never see a half-pruned checkpoint ----------------------------------------


def test_readers_racing_a_training_run_never_fail(tmp_path: Path) -> None:
    """A real trainer saving every 2 steps (each save prunes the one before) and readers
    loading the run in a loop: every load succeeds, and there were many of them."""
    path, _ = write_markov(tmp_path / "markov.txt", 6_000)
    corpus = load_corpus(str(path))
    run = tmp_path / "run"
    config = TrainConfig(
        batch_size=2, seq_len=8, max_steps=400, eval_interval=2, eval_chars=16,
        final_eval=False, device="cpu", precision="fp32",
    )  # fmt: skip
    trainer = Trainer(corpus, tiny_config("lstm"), config, out_dir=run)
    errors: list[str] = []
    loads = [0]
    done = threading.Event()

    def read() -> None:
        while not (run / "last").is_symlink() and not done.is_set():
            time.sleep(0.001)
        while not done.is_set():
            for prefer in ("last", "best"):
                try:
                    load_checkpoint(run, prefer=prefer)
                    loads[0] += 1
                except CheckpointError as exc:
                    errors.append(str(exc))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        trainer.run()
    finally:
        done.set()
        for reader in readers:
            reader.join()
    assert not errors, f"{len(errors)} of {len(errors) + loads[0]} loads failed: {errors[0]}"
    assert loads[0] >= 50


# ----- weights of a dtype the run did not write ------------------------------------------


@pytest.mark.parametrize(
    "dtype,code",
    [
        (torch.float16, "F16"),
        (torch.int64, "I64"),
        (torch.bool, "BOOL"),
        (torch.uint8, "U8"),
        (torch.complex64, "C64"),
        (torch.bfloat16, "BF16"),
    ],
)
def test_weights_of_another_dtype_are_refused(tmp_path: Path, dtype, code: str) -> None:
    checkpoint = save(tmp_path / "run", 1, ("last",))
    tensors = load_file(str(checkpoint / MODEL_FILE))
    save_file({k: v.to(dtype) for k, v in tensors.items()}, str(checkpoint / MODEL_FILE))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(checkpoint)
    assert_one_line(info.value, MODEL_FILE, code, "F32")
    assert any(name in str(info.value) for name in tensors)


def test_trainer_tensors_of_another_dtype_are_refused(tmp_path: Path) -> None:
    checkpoint = save(tmp_path / "run", 1, ("last",))
    save_file(
        {"rng.cpu": torch.zeros(5056, dtype=torch.float32)}, str(checkpoint / "trainer.safetensors")
    )
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(checkpoint, with_trainer=True)
    assert_one_line(info.value, "trainer.safetensors", "rng.cpu", "F32", "U8")


# ----- files that cannot be read -----------------------------------------------------------


def _plant(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "sparse":
        with open(path, "wb") as handle:
            handle.truncate(2 << 30)
    elif kind == "dangling":
        path.symlink_to(path.parent / "nowhere")


def _load_in_thread(target, timeout: float = 20.0):
    """Call `target`; a hang fails the test instead of hanging it."""
    box: dict = {}

    def call() -> None:
        try:
            box["value"] = target()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the reader hangs"
    return box


EXPECTED = {
    "directory": "a directory",
    "fifo": "named pipe",
    "dev-zero": "device",
    "sparse": "too large",
    "dangling": "not found",
}


@pytest.mark.parametrize("name", [MODEL_FILE, STATE_FILE, "trainer.safetensors"])
@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_unreadable_checkpoint_files_are_one_accurate_line(
    tmp_path: Path, name: str, kind: str
) -> None:
    checkpoint = save(tmp_path / "run", 1, ("last",))
    _plant(checkpoint / name, kind)
    box = _load_in_thread(lambda: load_checkpoint(tmp_path / "run", with_trainer=True))
    error = box.get("error")
    assert isinstance(error, CheckpointError), box
    assert_one_line(error, name, EXPECTED[kind])
    assert "missing" not in str(error) or kind == "dangling"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_weights_without_permission_are_not_called_missing(tmp_path: Path) -> None:
    checkpoint = save(tmp_path / "run", 1, ("last",))
    (checkpoint / MODEL_FILE).chmod(0)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(checkpoint)
    assert_one_line(info.value, MODEL_FILE, "permission denied")


# ----- the engine never writes through a planted link ------------------------------------


def plant_link(run: Path, name: str, target_exists: bool) -> Path:
    """A fresh run directory with `name` linked to a victim file beside it (or to where
    one would be); returns the victim."""
    run.mkdir()
    victim = run.parent / "victim.txt"
    if target_exists:
        victim.write_text("precious\n", encoding="utf-8")
    (run / name).symlink_to(victim)
    return victim


def assert_untouched(victim: Path, target_exists: bool) -> None:
    if target_exists:
        assert victim.read_text(encoding="utf-8") == "precious\n"
    else:
        assert not victim.exists(), "a dangling link's target was created"


@pytest.mark.parametrize("name", [".lock", "metrics.jsonl", ".metrics.jsonl.tmp"])
@pytest.mark.parametrize("target_exists", [True, False])
def test_a_link_planted_in_the_run_is_refused_and_never_written_through(
    tmp_path: Path, name: str, target_exists: bool
) -> None:
    path, _ = write_markov(tmp_path / "markov.txt", 6_000)
    corpus = load_corpus(str(path))
    run = tmp_path / "run"
    victim = plant_link(run, name, target_exists)
    config = TrainConfig(batch_size=2, seq_len=8, max_steps=3, eval_interval=2, device="cpu")
    with pytest.raises(CheckpointError) as info:
        Trainer(corpus, tiny_config("lstm"), config, out_dir=run).run()
    assert_one_line(info.value, name, "link")
    assert_untouched(victim, target_exists)


def test_the_precision_cache_is_never_written_through_a_link(tmp_path: Path) -> None:
    from engine.machine.precision import CpuFacts, choose_precision

    cache = tmp_path / "precision.json"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    (tmp_path / f".precision.json.{os.getpid()}.tmp").symlink_to(victim)
    cache.symlink_to(victim)
    cpu = CpuFacts("test cpu", frozenset({"amx_bf16"}), amx=True)
    choice = choose_precision(
        "auto", torch.device("cpu"), shape={"x": 1}, probe=lambda: (2.0, 1.0), cpu=cpu, cache=cache
    )
    assert choice.name == "bf16"
    assert victim.read_text(encoding="utf-8") == "precious\n"


def test_a_precision_cache_that_is_a_fifo_does_not_hang(tmp_path: Path) -> None:
    from engine.machine.precision import CpuFacts, choose_precision

    cache = tmp_path / "precision.json"
    os.mkfifo(cache)
    cpu = CpuFacts("test cpu", frozenset({"amx_bf16"}), amx=True)
    box = _load_in_thread(
        lambda: choose_precision(
            "auto",
            torch.device("cpu"),
            shape={"x": 1},
            probe=lambda: (2.0, 1.0),
            cpu=cpu,
            cache=cache,
        )
    )
    assert box["value"].name == "bf16"


def test_stale_metrics_temporaries_of_dead_writers_go(tmp_path: Path) -> None:
    """The metrics log's temporaries carry the writer's pid, so a later claim removes a
    dead writer's (a killed --force start)."""
    import subprocess
    import sys

    from engine.runs.run_dir import claim_run_dir

    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = run / f".metrics.jsonl.tmp-{dead.pid}-abcdef12"
    stale.write_text("{}\n", encoding="utf-8")
    claim_run_dir(run, resume=False, force=False).release()
    assert not stale.exists()
    shutil.rmtree(run)
