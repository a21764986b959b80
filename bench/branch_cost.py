"""What a branch costs: continuing 500 characters after a fork vs a plain continuation of 500.

Writing with the model forks a long generation at some character, puts another
character there and continues. The engine keeps a recurrent model's state every
64 characters along recent generations (engine/decoding/snapshots.py), so a
fork feeds at most 63 characters before going on; a Transformer re-primes one
window. Target: `fork_ratio` (fork + 500 chars / plain 500 chars) <= 1.1.

Measured per model (the CPU default preset, randomly initialised: speed does not
depend on the weights; tinyshakespeare's 65 characters when the file is at hand):
a 1,500-character text is generated from "ROMEO:" with snapshots kept; then, in
interleaved rounds, (a) plain: stream 500 characters from "ROMEO:"; (b) fork:
stream 500 characters from "ROMEO:" + the text's first `--fork-at` characters +
another character, resuming from the kept states; (c) re-read: the same fork
without kept states (the whole prefix fed again, for reference). Medians of the
rounds, in seconds.

    .venv/bin/python bench/branch_cost.py [--rounds 7] [--fork-at 1200] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config.presets import preset  # noqa: E402
from engine.data.corpus import Vocab  # noqa: E402
from engine.decoding.generator import Generator  # noqa: E402
from engine.decoding.params import SamplingParams  # noqa: E402
from engine.decoding.snapshots import StateSnapshots  # noqa: E402
from engine.models import build_model, make_config  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
PROMPT = "ROMEO:"
CONTINUE = 500


def _vocab() -> Vocab:
    if CORPUS.exists():
        return Vocab(sorted(set(CORPUS.read_text(encoding="utf-8"))))
    return Vocab(sorted({chr(c) for c in range(32, 97)} | {"\n"})[:65])


def _timed(generator: Generator, prompt: str, seed: int, store: StateSnapshots | None) -> float:
    params = SamplingParams(strategy="sample", temperature=1.0, length=CONTINUE, seed=seed)
    started = time.perf_counter()
    count = sum(1 for _ in generator.stream(prompt, params, snapshots=store))
    elapsed = time.perf_counter() - started
    assert count == CONTINUE
    return elapsed


def measure(model_type: str, vocab: Vocab, rounds: int, fork_at: int) -> dict:
    settings, _ = preset(model_type, "cpu")
    torch.manual_seed(0)
    model = build_model(make_config(model_type, vocab_size=len(vocab), **settings)).eval()
    generator = Generator(model, vocab)
    store = StateSnapshots()
    params = SamplingParams(strategy="sample", length=fork_at + 300, seed=1)
    infos = list(generator.stream(PROMPT, params, snapshots=store))
    text = "".join(i.char for i in infos)
    alternative = next(c for c, _ in infos[fork_at].top if c != text[fork_at])
    fork_prompt = PROMPT + text[:fork_at] + alternative
    _timed(generator, PROMPT, 0, None)  # warm-up
    plain, fork, reread = [], [], []
    for round_index in range(rounds):
        seed = 100 + round_index
        plain.append(_timed(generator, PROMPT, seed, None))
        # A fork of the long text, as the app makes it: the store holds that text's states
        # (and the earlier forks', as it would after a session of writing).
        fork.append(_timed(generator, fork_prompt, seed, store))
        reread.append(_timed(generator, fork_prompt, seed, None))
    plain_s, fork_s, reread_s = (statistics.median(x) for x in (plain, fork, reread))
    return {
        "model": f"{model_type} {settings}",
        "plain_500_s": round(plain_s, 4),
        "fork_500_s": round(fork_s, 4),
        "reread_500_s": round(reread_s, 4),
        "fork_ratio": round(fork_s / plain_s, 3),
        "reread_ratio": round(reread_s / plain_s, 3),
        "kept_states": len(store),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--fork-at", type=int, default=1200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="lstm,transformer")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vocab = _vocab()
    results = [measure(m, vocab, args.rounds, args.fork_at) for m in args.models.split(",")]
    print(
        json.dumps(
            {
                "bench": "branch_cost",
                "target": "fork_ratio <= 1.1",
                "continue_chars": CONTINUE,
                "fork_at": args.fork_at,
                "results": results,
                "threads": args.threads,
                "load_avg_1min": round(os.getloadavg()[0], 2),
                "machine": platform.processor() or platform.machine(),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
