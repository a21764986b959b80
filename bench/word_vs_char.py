"""A word-token model against a character model: same corpus, same time budget, same split.

Runs the real commands, one run after the other: `train --time-budget S --json`
with `--tokens char`, then with `--tokens word` (same model type, preset and
seed), then `eval --json` on each checkpoint: both in bits per character of the
whole held-out text (the last 10% of the corpus by characters; a word model's
figure is its total NLL over that text's tokens divided by its characters).
The separate `eval` scores the whole split even when a busy machine made the
training command's own final evaluation partial (`partial_eval`).

    python bench/word_vs_char.py [--corpus ../shared/corpora/tinyshakespeare.txt]
        [--budget 60] [--model lstm] [--preset cpu] [--word-vocab 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent.parent / "shared" / "corpora" / "tinyshakespeare.txt"


def cli(*command: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "charlm_tui", *command, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        sys.exit(done.returncode)
    return json.loads(done.stdout)


def train(corpus: str, out: Path, args: argparse.Namespace, *extra: str) -> dict:
    return cli(
        "train", "--corpus", corpus, "--out", str(out), "--model", args.model,
        "--preset", args.preset, "--time-budget", str(args.budget), "--seed", str(args.seed),
        *extra,
    )  # fmt: skip


def scored(corpus: str, out: Path) -> dict:
    result = cli("eval", "--checkpoint", str(out / "last"), "--corpus", corpus, "--split", "val")
    keys = ("bpc", "loss", "chars", "loss_per_token", "tokens_scored", "split")
    return {key: result.get(key) for key in keys}


def summary(result: dict) -> dict:
    keys = (
        "tokens", "val_bpc", "val_loss", "val_chars", "partial_eval", "val_loss_per_token",
        "val_tokens", "vocab_size", "steps", "elapsed_s", "parameters", "precision",
    )  # fmt: skip
    return {key: result.get(key) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--model", default="lstm")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--word-vocab", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        char = train(args.corpus, Path(tmp) / "char", args, "--tokens", "char")
        word = train(
            args.corpus, Path(tmp) / "word", args,
            "--tokens", "word", "--word-vocab", str(args.word_vocab),
        )  # fmt: skip
        char_eval = scored(args.corpus, Path(tmp) / "char")
        word_eval = scored(args.corpus, Path(tmp) / "word")
    print(
        json.dumps(
            {
                "bench": "word_vs_char",
                "corpus": Path(args.corpus).name,
                "model": args.model,
                "preset": args.preset,
                "time_budget_s": args.budget,
                "word_vocab": args.word_vocab,
                "machine": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(),
                "char": {**summary(char), "eval": char_eval},
                "word": {**summary(word), "eval": word_eval},
                # the whole held-out split, the same characters for both
                "same_split": char_eval["chars"] == word_eval["chars"],
                "char_bpc": char_eval["bpc"],
                "word_bpc": word_eval["bpc"],
                "word_minus_char_bpc": word_eval["bpc"] - char_eval["bpc"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
