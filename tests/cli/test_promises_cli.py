"""Issue 9, through the real entry point: no run lost or overwritten, no traceback from a
file or a flag. Each test is one numbered case of the issue (noted in its docstring).

Most run `charlm_tui.cli.main()` in this process (`cli_main`: the real parser, exit codes
and streams, and a monkeypatch can stand in for a full disk); the ones that need a real
process (an OS lock held by another process, bytes in argv, stdin) use `run_cli`.
"""

from __future__ import annotations

import errno
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.runs.checkpoint import load_checkpoint
from tests.helpers import REPO, assert_user_error, cli_env, cli_json, run_cli, write_markov

TINY = ["--preset", "tiny", "--device", "cpu", "--precision", "fp32"]


def one_line(proc, *fragments: str) -> str:
    return assert_user_error(proc, *fragments)


def fails_after_progress(proc, *fragments: str) -> str:
    """Training that fails after it started: its progress lines, then one error line, rc 2."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("charlm-tui: error:")]
    assert errors == lines[-1:], proc.stderr
    for fragment in fragments:
        assert fragment.lower() in errors[0].lower(), (fragment, errors[0])
    return errors[0]


def train(cli_main, corpus: Path, out: Path, *extra: object):
    return cli_main("train", "--corpus", corpus, "--out", out, *TINY, *extra)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = write_markov(tmp_path_factory.mktemp("promise-corpus") / "markov.txt", 20_000)
    return path


@pytest.fixture
def run_dir(cli_main, corpus_file: Path, tmp_path: Path) -> Path:
    """A finished 10-step run (checkpoints at steps 5 and 10)."""
    out = tmp_path / "run"
    proc = train(cli_main, corpus_file, out, "--max-steps", "10", "--set", "eval_interval=5")
    assert proc.returncode == 0, proc.stderr
    return out


def last_step(run: Path) -> int:
    return load_checkpoint(run, prefer="last").step


# ----- 1. a run is never overwritten by accident --------------------------------------


def test_train_refuses_an_existing_run_without_resume_or_force(
    cli_main, corpus_file: Path, run_dir: Path
) -> None:
    """Case 1: `train --out DIR` on a run refuses (and keeps it); --force replaces it."""
    before = (run_dir / "last").resolve()
    proc = train(cli_main, corpus_file, run_dir, "--max-steps", "3")
    one_line(proc, "already holds a run (step 10", "--resume", "--force")
    assert (run_dir / "last").resolve() == before and before.exists()
    proc = train(cli_main, corpus_file, run_dir, "--max-steps", "3", "--force")
    assert proc.returncode == 0, proc.stderr
    assert last_step(run_dir) == 3
    assert not before.exists(), "the old run was replaced"
    assert sorted(p.name for p in run_dir.glob("step-*")) == [(run_dir / "last").resolve().name]


# ----- 2. one writer per run directory --------------------------------------------------

HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, str(os.getpid()).encode(), 0)
print("locked", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_a_second_writer_gets_one_line(cli_main, corpus_file: Path, run_dir: Path) -> None:
    """Case 2: while another process holds the run, `train` stops at once with one line."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir / ".lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        proc = train(cli_main, corpus_file, run_dir, "--resume", "--max-steps", "20")
        one_line(proc, "in use by another training process", f"pid {holder.pid}")
        assert time.monotonic() - started < 10, "refused before training"
        proc = cli_main("train", "--corpus", corpus_file, "--out", run_dir, *TINY, "--force")
        one_line(proc, "in use by another training process")
        assert last_step(run_dir) == 10, "the other writer's run is untouched"
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the lock with the process: the run continues.
    proc = train(cli_main, corpus_file, run_dir, "--resume", "--max-steps", "12")
    assert proc.returncode == 0, proc.stderr
    assert last_step(run_dir) == 12


# ----- 5. unwritable --out and full disks ---------------------------------------------


def test_unwritable_out_is_found_at_start_up(
    cli_main, corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 5: --out a file, under a file, impossible, or on a full disk: one line, no training."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    one_line(train(cli_main, corpus_file, a_file, "--max-steps", "5"), "a-file", "file")
    one_line(
        train(cli_main, corpus_file, a_file / "run", "--max-steps", "5"), "a file is in the way"
    )
    if Path("/proc/self").exists():
        one_line(
            train(cli_main, corpus_file, "/proc/charlm-run", "--max-steps", "5"), "cannot write"
        )

    import shutil

    from engine.runs import run_dir as run_dir_module

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(run_dir_module.shutil, "disk_usage", lambda path: usage._replace(free=1000))
    started = time.monotonic()
    proc = train(cli_main, corpus_file, tmp_path / "full", "--max-steps", "5")
    one_line(proc, "not enough space", "MB free")
    assert time.monotonic() - started < 20
    assert not list((tmp_path / "full").glob("step-*"))


def test_a_full_disk_at_save_time_leaves_no_temporaries(
    cli_main, corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 5: ENOSPC while writing a checkpoint: one line, no .tmp-* left behind."""
    from engine.runs import checkpoint

    real_save_file = checkpoint.save_file

    def full_disk(tensors: dict, path: str) -> None:
        real_save_file(tensors, path)  # half the bytes are on disk when the disk fills
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    out = tmp_path / "run"
    proc = train(cli_main, corpus_file, out, "--max-steps", "10", "--set", "eval_interval=5")
    fails_after_progress(proc, "no space left")
    left = [p.name for p in out.iterdir() if p.name.startswith((".tmp", ".last", "step-"))]
    assert left == [], "no temporaries, no half-written checkpoint"


def test_the_encoding_cache_on_an_unusable_disk_is_skipped_with_a_warning(
    corpus_file: Path, tmp_path: Path
) -> None:
    """Case 5: the cache cannot be written: one warning line, the command still works."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    env = cli_env(cache_dir=blocker / "cache")
    proc = run_cli("corpus", "info", corpus_file, "--json", env=env)
    info = cli_json(proc)
    assert info["chars"] == 20_000
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1, proc.stderr
    # The cache is optional: a private temporary one stands in for the unusable directory.
    assert warnings[0].startswith("charlm-tui: warning: cannot use "), warnings[0]
    assert "as the cache directory (a file is in the way)" in warnings[0]
    assert not (blocker / "cache").exists()


# ----- 6. resume is exact, or says it is not ----------------------------------------------


def test_resume_without_trainer_state_or_on_changed_text_is_refused_unless_forced(
    cli_main, corpus_file: Path, run_dir: Path, tmp_path: Path
) -> None:
    """Case 6: a resume that cannot be exact says so; --force continues anyway."""
    last = (run_dir / "last").resolve()
    changed = tmp_path / "changed.txt"
    text = corpus_file.read_text(encoding="utf-8")
    changed.write_text(text[::-1], encoding="utf-8")  # same characters, other text
    proc = train(cli_main, changed, run_dir, "--resume", "--max-steps", "12")
    one_line(proc, "not be exact", "corpus text changed", "--force")

    (last / "trainer.safetensors").unlink()
    proc = train(cli_main, corpus_file, run_dir, "--resume", "--max-steps", "12")
    one_line(proc, "not be exact", "trainer.safetensors is missing", "--force")
    assert last_step(run_dir) == 10
    proc = train(cli_main, corpus_file, run_dir, "--resume", "--max-steps", "12", "--force")
    assert proc.returncode == 0, proc.stderr
    assert "resuming inexactly" in proc.stderr
    assert last_step(run_dir) == 12


# ----- 7. state.json is validated before anything is built ------------------------------

DEEP = "[" * 100_000 + "]" * 100_000

STATE_EDITS: dict[str, tuple[object, str]] = {
    # name: (edit (key path -> value) or raw JSON text, fragment of the message)
    "step-text": ({"step": "abc"}, "step"),
    "step-nan": ({"step": math.nan}, "step"),
    "corpus-string": ({"corpus": "markov"}, "corpus"),
    "train-string": ({"train": "fast"}, "train"),
    "char-counts-string": ({"char_counts": "many"}, "char_counts"),
    "history-string": ({"history": "long"}, "history"),
    "history-entries": ({"history": [{"step": "x"}]}, "history step"),
    "history-values": ({"history": [{"step": 1, "val_loss": "low"}]}, "val_loss"),
    "deep-json": (None, "nested too deeply"),
    "hidden-1e12": ({"model.hidden_size": 1e12}, "hidden_size"),
    "hidden-40000": ({"model.hidden_size": 40_000}, "does not fit"),
    "layers-1e6-float": ({"model.num_layers": 1e6}, "num_layers"),
    "layers-1e6": ({"model.num_layers": 1_000_000}, "num_layers"),
    "no-version": ({"version": None}, "no valid format version"),
}


@pytest.mark.parametrize("case", list(STATE_EDITS))
def test_tampered_state_json_is_one_line_and_quick(
    cli_main, corpus_file: Path, run_dir: Path, case: str
) -> None:
    """Case 7 (and 13's `format None`): every bad field is one line, before any allocation."""
    edit, fragment = STATE_EDITS[case]
    state_file = (run_dir / "last").resolve() / "state.json"
    if edit is None:
        text = state_file.read_text(encoding="utf-8")
        state_file.write_text(text[:-1] + f', "extra": {DEEP}}}', encoding="utf-8")
    else:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        for key, value in edit.items():  # type: ignore[union-attr]
            *parents, leaf = key.split(".")
            target = state
            for parent in parents:
                target = target[parent]
            if value is None:
                target.pop(leaf, None)
            else:
                target[leaf] = value
        state_file.write_text(json.dumps(state), encoding="utf-8")
    started = time.monotonic()
    line = one_line(cli_main("eval", "--checkpoint", run_dir, "--corpus", corpus_file), fragment)
    assert "newer" not in line
    assert time.monotonic() - started < 5, "refused before building anything"


# ----- 8. trainer.safetensors that does not fit -------------------------------------------


@pytest.mark.parametrize("damage", ["shape", "short-rng", "unknown-parameter"])
def test_wrong_trainer_tensors_are_one_line_from_resume(
    cli_main, corpus_file: Path, run_dir: Path, damage: str
) -> None:
    """Case 8: moments of the wrong shape or a short RNG state stop --resume with one line."""
    path = (run_dir / "last").resolve() / "trainer.safetensors"
    tensors = load_file(str(path))
    if damage == "shape":
        name = next(k for k in tensors if k.endswith(".exp_avg"))
        tensors[name] = torch.zeros(3, 3)
    elif damage == "short-rng":
        tensors["rng.cpu"] = tensors["rng.cpu"][:100].clone()
    else:
        tensors["optim.999.exp_avg"] = torch.zeros(2)
    save_file(tensors, str(path))
    proc = train(cli_main, corpus_file, run_dir, "--resume", "--max-steps", "20")
    one_line(proc, "trainer.safetensors")
    assert last_step(run_dir) == 10


# ----- 9. never a non-finite checkpoint -----------------------------------------------------


def test_non_finite_weights_are_refused_at_load(cli_main, corpus_file: Path, run_dir: Path) -> None:
    """Case 9: NaN weights: eval, generate and resume refuse them with one line."""
    path = (run_dir / "last").resolve() / "model.safetensors"
    tensors = load_file(str(path))
    name = next(iter(tensors))
    tensors[name][0] = math.nan
    save_file(tensors, str(path))
    one_line(cli_main("eval", "--checkpoint", run_dir, "--corpus", corpus_file), "not finite")
    one_line(cli_main("generate", "--checkpoint", run_dir, "--length", "5"), "not finite")
    proc = train(cli_main, corpus_file, run_dir, "--resume", "--max-steps", "20")
    one_line(proc, "not finite")


def test_diverging_training_stops_with_rc_2_and_keeps_the_last_good_checkpoint(
    cli_main, corpus_file: Path, run_dir: Path
) -> None:
    """Case 9: `--set lr=1e30` diverges: rc 2, one line, `last` and `best` stay finite."""
    best = (run_dir / "best").resolve()
    proc = train(
        cli_main,
        corpus_file,
        run_dir,
        "--resume",
        "--max-steps",
        "40",
        "--set",
        "lr=1e30",
        "--set",
        "eval_interval=1",
    )
    line = fails_after_progress(proc, "diverged", "last good checkpoint")
    diverged_at = int(line.split("diverged at step ")[1].split(":")[0])
    assert (run_dir / "best").resolve() == best, "a diverging model is never the best"
    assert 10 <= last_step(run_dir) < diverged_at
    for tag in ("last", "best"):
        loaded = load_checkpoint(run_dir, prefer=tag)
        assert all(torch.isfinite(p).all() for p in loaded.model.parameters())


# ----- 10. no traceback from a flag ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--temperature", "1e-300"], "temperature"),
        (["--strategy", "beam", "--length-penalty", "-1e308"], "length penalty"),
        (["--strategy", "beam", "--beam-width", "1000000"], "beam width"),
        (["--num-samples", "100000000"], "num-samples"),
    ],
)
def test_absurd_generation_flags_are_one_line(cli_main, run_dir: Path, args, fragment) -> None:
    """Case 10: values that overflow, divide by zero or exhaust memory are refused up front."""
    started = time.monotonic()
    one_line(cli_main("generate", "--checkpoint", run_dir, *args), fragment)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("batch_size=1000000000", "batch_size"),
        ("seq_len=100000000", "seq_len"),
        ("lr=1e999", "must be finite"),  # case 13: not "must be above 0"
        ("hidden_size=40000", "does not fit"),
    ],
)
def test_absurd_training_settings_are_one_line(
    cli_main, corpus_file: Path, tmp_path: Path, setting: str, fragment: str
) -> None:
    """Case 10: --set sizes are bounded, and the bounds are in --help."""
    started = time.monotonic()
    one_line(train(cli_main, corpus_file, tmp_path / "run", "--set", setting), fragment)
    assert time.monotonic() - started < 5


def test_bounds_are_stated_in_help(cli_main) -> None:
    """Case 10: --help says the upper bounds it enforces."""
    generate_help = cli_main("generate", "--help").stdout
    for bound in ("[0.0001, 100]", "1 to 256", "[-10, 10]", "1 to 1,024"):
        assert bound in " ".join(generate_help.split()), bound
    train_help = " ".join(cli_main("train", "--help").stdout.split())
    assert "65,536" in train_help and "16,777,216" in train_help


def test_utf16_without_a_bom_is_one_line(cli_main, tmp_path: Path) -> None:
    """Case 10: `--encoding utf-16` on a file without a byte order mark."""
    path = tmp_path / "u16.txt"
    path.write_bytes(("some text here. " * 200).encode("utf-16-le"))
    one_line(cli_main("corpus", "info", path, "--encoding", "utf-16"), "utf-16", "byte order")
    proc = train(cli_main, path, tmp_path / "run", "--encoding", "utf-16", "--max-steps", "2")
    one_line(proc, "utf-16")


@pytest.mark.parametrize(
    "command", [["generate"], ["generate", "--stream"], ["compare", "--num-samples", "1"]]
)
def test_invalid_utf8_in_a_prompt(run_dir: Path, command: list[str]) -> None:
    """Case 10: bytes that are not UTF-8 in argv: dropped with --drop-unknown, else one line."""
    prompt = "ab\udcffcd"  # what Python makes of the argument bytes b"ab\xffcd"
    base = [*command, "--checkpoint", run_dir, "--length", "5", "--seed", "1"]
    proc = run_cli(*base, "--prompt", prompt, "--drop-unknown", "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stdout.splitlines()[-1])
    assert last.get("prompt", "abcd") == "abcd"
    assert_user_error(run_cli(*base, "--prompt", prompt), "not valid UTF-8", "--drop-unknown")


# ----- 11. long prompts --------------------------------------------------------------------


def test_prompt_file_and_stdin_take_prompts_longer_than_argv_allows(
    run_dir: Path, corpus_file: Path, tmp_path: Path
) -> None:
    """Case 11: a 200k-character prompt (over Linux's 128 KiB argument cap) from a file or stdin."""
    text = corpus_file.read_text(encoding="utf-8")
    prompt = (text * 11)[:200_000]
    path = tmp_path / "prompt.txt"
    path.write_text(prompt, encoding="utf-8")
    base = ["generate", "--checkpoint", run_dir, "--length", "8", "--seed", "3", "--json"]
    from_file = cli_json(run_cli(*base, "--prompt-file", path))
    proc = subprocess.run(
        [sys.executable, "-m", "charlm_tui", *map(str, base), "--prompt-file", "-"],
        input=prompt,
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=REPO,
        timeout=120,
    )
    from_stdin = cli_json(proc)
    assert from_file["prompt"] == from_stdin["prompt"] == prompt
    assert from_file["samples"] == from_stdin["samples"] and len(from_file["samples"][0]) == 8


# ----- 13. messages that say what is wrong ---------------------------------------------------


def test_resume_on_another_vocabulary_names_the_characters(
    cli_main, run_dir: Path, corpus_file: Path, tmp_path: Path
) -> None:
    """Case 13: the same count of characters, different ones: the message names them."""
    text = corpus_file.read_text(encoding="utf-8")
    present = sorted(set(text))
    swapped = text.replace(present[-1], "\u00e9")  # one character traded for another
    other = tmp_path / "other.txt"
    other.write_text(swapped, encoding="utf-8")
    proc = train(cli_main, other, run_dir, "--resume", "--max-steps", "20")
    line = one_line(proc, "vocabulary", "only in the corpus", "\u00e9")
    assert repr(present[-1]).strip("'") in line


def test_train_on_a_directory_says_which_files_it_skipped(
    cli_main, corpus_file: Path, tmp_path: Path
) -> None:
    """Case 13: undecodable and binary files in a corpus directory are reported, not silent."""
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text(corpus_file.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "bad.txt").write_bytes(b"caf\xe9 au lait " * 50)
    (folder / "blob.bin").write_bytes(bytes(range(256)) * 8)
    proc = train(cli_main, folder, tmp_path / "run", "--max-steps", "2")
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 binary and 1 undecodable files" in " ".join(proc.stderr.split())
