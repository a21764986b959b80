"""Helpers shared by the engine and CLI tests: tiny models, CLI runs, error checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MANIFEST_PATH = REPO / "sample_corpora" / "manifest.json"

# Small enough to build and run in milliseconds, big enough to have every part.
TINY_MODELS: dict[str, dict] = {
    "lstm": {"embed_dim": 8, "hidden_size": 16, "num_layers": 2, "dropout": 0.1},
    "gru": {"embed_dim": 8, "hidden_size": 16, "num_layers": 2, "dropout": 0.1},
    "rnn": {"embed_dim": 8, "hidden_size": 16, "num_layers": 2, "dropout": 0.1},
    "transformer": {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 24, "dropout": 0.1},
}
MODEL_TYPES = tuple(TINY_MODELS)


def tiny_config(model_type: str, vocab_size: int | None = None, **overrides: object):
    from engine.models import make_config

    values = {**TINY_MODELS[model_type], **overrides}
    if vocab_size is not None:
        values["vocab_size"] = vocab_size
    return make_config(model_type, **values)


def tiny_model(model_type: str, vocab_size: int = 11, seed: int = 0, **overrides: object):
    import torch

    from engine.models import build_model

    torch.manual_seed(seed)
    return build_model(tiny_config(model_type, vocab_size, **overrides)).eval()


def cli_env(cache_dir: Path | str | None = None, **extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: this session's cache, one thread."""
    env = dict(os.environ)
    env["CHARLM_CACHE_DIR"] = str(cache_dir or os.environ["CHARLM_CACHE_DIR"])
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("CHARLM_URL_TINYSHAKESPEARE", None)
    env.update(extra)
    return env


def run_cli(
    *args: str | os.PathLike,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m charlm_tui ARGS`: the real entry point, exit codes and streams."""
    return subprocess.run(
        [sys.executable, "-m", "charlm_tui", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or cli_env(),
        cwd=cwd or REPO,
    )


def cli_json(proc: subprocess.CompletedProcess[str]) -> dict:
    """stdout is exactly one JSON object (and the command succeeded)."""
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    payload = json.loads(lines[0])
    assert isinstance(payload, dict)
    return payload


def assert_user_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit code 2, exactly one line on stderr, no traceback; returns that line."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("charlm-tui: error:"), line
    for fragment in fragments:
        assert fragment.lower() in line.lower(), (fragment, line)
    return line


def assert_one_line(message: object, *fragments: str) -> None:
    """A user-facing error message: one non-empty line mentioning `fragments`."""
    text = str(message)
    assert text.strip(), "empty error message"
    assert "\n" not in text.strip(), text
    for fragment in fragments:
        assert fragment.lower() in text.lower(), (fragment, text)


def write_markov(path: Path, length: int = 20_000, seed: int = 3) -> tuple[Path, float]:
    """A Markov-chain corpus on disk and its entropy rate in nats/char."""
    import math

    from engine.data.markov import MarkovSource

    source = MarkovSource(seed=seed)
    path.write_text(source.generate(length, seed=seed + 1), encoding="utf-8")
    return path, source.entropy_rate_bits() * math.log(2)


def run_main(*args: str | os.PathLike) -> subprocess.CompletedProcess[str]:
    """`charlm_tui.cli.main()` in this process with `args` as argv; streams via capsys.

    The caller captures the streams (the `cli_main` fixture does): this only runs it.
    """
    from charlm_tui.cli import main

    saved = sys.argv
    sys.argv = ["charlm-tui", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return subprocess.CompletedProcess(list(map(str, args)), code, "", "")


def context_generator(kind: str, vocab, settings: dict, seed: int = 0, unigram=None):
    """A Generator over a random model whose outputs really depend on the context.

    A freshly initialised model barely looks at its context (a Transformer just copies
    the last character); larger random weights make every output depend on it, which
    is what decoding tests need to tell a right state from a wrong one.
    """
    import torch

    from engine.decoding.generator import Generator
    from engine.models import build_model, make_config

    torch.manual_seed(seed)
    model = build_model(make_config(kind, vocab_size=len(vocab), **settings[kind]))
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.5)
    return Generator(model.eval(), vocab, unigram)


def quoted_text(chars: int, seed: int = 0) -> str:
    """Words of a-f; inside "quoted spans" the words are joined by '-' instead of ' '.

    The letters are the same inside and out, so no single character says whether
    it is quoted; predicting '-' versus ' ' needs "am I inside quotes?", which a
    model that learns this text keeps in some unit: the inspect tests look for it.
    """
    import random

    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choice("abcdef") for _ in range(rng.randint(1, 4)))

    parts: list[str] = []
    size = 0
    while size < chars:
        if rng.random() < 0.25:
            piece = '"' + "-".join(word() for _ in range(rng.randint(2, 5))) + '"'
        else:
            piece = word()
        if rng.random() < 0.05:
            piece += "\n"
        parts.append(piece)
        size += len(piece) + 1
    return " ".join(parts)[:chars]


def write_styles(parent: Path) -> Path:
    """A small labelled folder under `parent`: `styles/` with a code label and a prose label."""
    folder = parent / "styles"
    folder.mkdir()
    (folder / "code.txt").write_text("def f(x):\n    return x + 1\n" * 150, encoding="utf-8")
    (folder / "prose.txt").write_text("The cat sat on the mat. It was warm.\n" * 120, "utf-8")
    return folder
