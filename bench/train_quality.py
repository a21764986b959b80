"""Train the CPU default on tinyshakespeare for a fixed time; print JSON with val_loss.

Runs the real command (`python -m charlm_tui train ... --time-budget S --json`) so
start-up, data loading and the final full evaluation all count against the
budget. Target on a 2-core machine: val_loss <= 1.55 nats/char after 120 s.

    python bench/train_quality.py [--budget 120] [--corpus PATH] [--model lstm]
                                  [--preset cpu] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
TARGET = 1.55


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=120.0)
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--model", default="lstm")
    parser.add_argument("--preset", default=None)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--set", dest="settings", action="append", default=[])
    args = parser.parse_args()
    if not Path(args.corpus).exists():
        sys.exit(f"corpus not found: {args.corpus}")

    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            "-m",
            "charlm_tui",
            "train",
            "--corpus",
            args.corpus,
            "--out",
            out,
            "--model",
            args.model,
            "--time-budget",
            str(args.budget),
            "--seed",
            str(args.seed),
            "--json",
        ]
        if args.preset:
            command += ["--preset", args.preset]
        for item in args.settings:
            command += ["--set", item]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        sys.exit(done.returncode)
    result = json.loads(done.stdout)
    report = {
        "benchmark": "train_quality",
        "corpus": Path(args.corpus).name,
        "budget_s": args.budget,
        "wall_s": round(wall, 2),
        "val_loss": round(result["val_loss"], 4),
        "val_bpc": round(result["val_bpc"], 4),
        "val_chars": result["val_chars"],
        "steps": result["steps"],
        "chars_per_s": round(result["chars_per_s"]),
        "parameters": result["parameters"],
        "model": result["model"],
        "train": {
            k: result["train"][k]
            for k in (
                "batch_size",
                "seq_len",
                "lr",
                "batching",
                "precision",
                "warmup_steps",
                "min_lr_ratio",
            )
        },
        "device": result["device"],
        "cpu_count": os.cpu_count(),
        "target_val_loss": TARGET,
        "meets_target": result["val_loss"] <= TARGET,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
