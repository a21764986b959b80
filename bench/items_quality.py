"""A line-per-item model on a names-like list: test loss per char and the share of new names.

makemore's use case on a list made here (engine.data.names: a seeded syllable
grammar, nothing downloaded). Runs the real commands: `train --items
--time-budget S --json` (its val_loss is nats per character of the held-out
split, every newline counted as a character, as makemore counts its end token),
then `generate --items N --temperature 1.0 --json`: the share of generated
items not in the training items, and in neither the training nor held-out ones.

    python bench/items_quality.py [--budget 60] [--names 30000] [--items 200] [--preset tiny]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "charlm_tui", *args, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        sys.exit(done.returncode)
    return json.loads(done.stdout)


def main() -> None:
    from engine.data.items import item_novelty, item_stats, split_item_sets
    from engine.data.names import synthetic_names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--names", type=int, default=30_000)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--model", default="lstm")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    names = synthetic_names(args.names, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "names.txt"
        corpus.write_text("\n".join(names) + "\n", encoding="utf-8")
        out = Path(tmp) / "run"
        started = time.perf_counter()
        trained = run(
            "train", "--corpus", str(corpus), "--out", str(out), "--items",
            "--model", args.model, "--preset", args.preset,
            "--time-budget", str(args.budget), "--seed", str(args.seed),
        )  # fmt: skip
        wall = time.perf_counter() - started
        print(f"trained in {wall:.1f}s", file=sys.stderr, flush=True)
        generated = run(
            "generate", "--checkpoint", str(out), "--items", str(args.items),
            "--temperature", "1.0", "--length", "40", "--seed", str(args.seed),
        )  # fmt: skip
    text = "\n".join(names) + "\n"
    cut = int(len(text) * 0.9)  # the trainer's split: the last 10% is held out
    train_items, held_out = split_item_sets(text[:cut], text[cut:])
    novelty = item_novelty(generated["items"], train_items, held_out)
    stats = item_stats(names)
    print(
        json.dumps(
            {
                "benchmark": "items_quality",
                "names": stats.items,
                "unique_names": stats.unique,
                "budget_s": args.budget,
                "wall_s": round(wall, 2),
                "train_elapsed_s": round(trained["elapsed_s"], 2),
                "test_loss_per_char": round(trained["val_loss"], 4),
                "test_bits_per_char": round(trained["val_loss"] / math.log(2), 4),
                "test_chars_incl_newlines": trained["val_chars"],
                "steps": trained["steps"],
                "generated_items_T1": novelty["items"],
                "novel_vs_train_T1": round(novelty["novel_vs_train"], 4),
                "novel_vs_train_and_held_out_T1": round(novelty["novel_vs_all"], 4),
                "model": args.model,
                "preset": args.preset,
                "parameters": trained["parameters"],
                "cpu_count": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
