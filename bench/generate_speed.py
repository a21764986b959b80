"""Generation speed of the engine against the seed notebook's own method. Prints one JSON object.

The models are the LSTM presets in --presets (default both the CPU default `cpu`,
what `charlm-tui train` uses with no preset on a CPU, and `seed`, the course
notebook's own shape), each randomly initialised with a 65-character vocabulary
(tinyshakespeare's when the file is at hand), unless --checkpoint names a trained
one: speed does not depend on the weights. The report names the CPU model, its
native bf16 support and the load average before and after.

The seed's two methods are re-implemented faithfully below (`seed_generate_text`
with `seed_sample_next_token`, and `seed_beam_search`): every character re-runs
the last 64 characters of context through the model, and beam search loops over
beams in Python, one forward call each. The prompt is longer than 64
characters, so every seed step costs its full 64-character window and its cost
per character is constant; the seed runs are therefore timed on fewer
characters / steps (--seed-chars, --seed-beam-steps) and reported per character
(per step for beam search) next to ours; --full-baseline runs them in full.
Every configuration is timed in each of --rounds interleaved rounds and its best
round is kept. The engine and the seed's methods each run with 1 and with
--threads intra-op threads; `speedup` compares each side at its best thread
count, and each side at the same thread count.

Measured:
- single stream, 2,000 chars of sampling (T=1): engine chars/s through
  `generate` and through `stream`, seed chars/s, speed-ups; `decode_backend` names
  how the engine stepped one row (CHARLM_DECODE_BACKEND, default NumPy: engine/
  models/numpy_step.py), and `torch_backend_chars_per_s_by_threads` times the
  same stream stepped in torch, so each CPU shows which backend wins there; time to first
  character through `stream` (prompt fed, one step), median of several, for a
  short prompt ("ROMEO:") and for the long one (an LSTM reads a prompt one
  position at a time, so that time grows with its length);
- beam search, width 10, 200 chars: engine seconds, seed seconds, speed-up;
- 64 streams sampled together in one batch: total chars/s.

Other processes may share the cores: `load_avg_1min` is reported, and
`generate_chars_per_cpu_s` (characters per second of this process's CPU time)
shows what the single stream does on a core of its own.

    .venv/bin/python bench/generate_speed.py [--checkpoint DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
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
from engine.device import cpu_has_amx, cpu_info, native_bf16  # noqa: E402
from engine.models import build_model, make_config  # noqa: E402
from engine.models.recurrent import decode_backend  # noqa: E402

CORPUS = next(
    (
        path
        for path in (
            ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt",
            ROOT.parents[1] / "shared" / "corpora" / "tinyshakespeare.txt",  # from a worktree
        )
        if path.exists()
    ),
    ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt",
)
SEQ_LEN = 64  # the seed notebook's context window
SHORT_PROMPT = "ROMEO:"
PROMPT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n"
)
TARGETS = {
    "sample_speedup": 20.0,
    "sample_chars_per_s": 2000.0,
    "first_char_ms": 20.0,
    "beam_speedup": 30.0,
}


# ----- the seed notebook's methods, as printed (Part 5 and Part 7) --------------------------


def seed_sample_next_token(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    probabilities = torch.softmax(logits, dim=-1)
    if top_k is not None:
        topk_probs, topk_indices = torch.topk(probabilities, top_k)
        probabilities_masked = torch.zeros_like(probabilities)
        probabilities_masked[topk_indices] = topk_probs
        probabilities = probabilities_masked / probabilities_masked.sum()
    if top_p is not None:
        sorted_probs, sorted_indices = torch.sort(probabilities, descending=True)
        cumsum_probs = torch.cumsum(sorted_probs, dim=-1)
        sorted_indices_to_remove = cumsum_probs > top_p
        sorted_indices_to_remove[0] = False
        sorted_probs[sorted_indices_to_remove] = 0
        probabilities = torch.zeros_like(probabilities)
        probabilities[sorted_indices] = sorted_probs
        probabilities = probabilities / probabilities.sum()
    token_idx = torch.multinomial(probabilities, num_samples=1)
    return token_idx.item()


def seed_generate_text(
    model,
    start_text,
    max_length,
    char_to_idx,
    idx_to_char,
    device,
    temperature=1.0,
    top_k=None,
    top_p=None,
):
    model.eval()
    current_text = start_text
    context = torch.tensor([char_to_idx[c] for c in start_text], dtype=torch.long).to(device)
    with torch.no_grad():
        for _ in range(max_length):
            context_trimmed = context[-SEQ_LEN:].unsqueeze(0)
            logits = model(context_trimmed)
            next_logits = logits[0, -1, :]
            next_idx = seed_sample_next_token(
                next_logits, temperature=temperature, top_k=top_k, top_p=top_p
            )
            context = torch.cat([context, torch.tensor([next_idx]).to(device)])
            current_text += idx_to_char[next_idx]
    return current_text


def seed_beam_search(model, start_text, max_length, char_to_idx, idx_to_char, device, beam_width=5):
    model.eval()
    beams = [
        (
            start_text,
            torch.tensor([char_to_idx[c] for c in start_text], dtype=torch.long).to(device),
            0.0,
        )
    ]
    with torch.no_grad():
        for _ in range(max_length):
            new_beams = []
            for text, context, log_prob in beams:
                context_trimmed = context[-SEQ_LEN:].unsqueeze(0)
                logits = model(context_trimmed)
                next_logits = logits[0, -1, :]
                log_probs = torch.log_softmax(next_logits, dim=-1)
                topk_log_probs, topk_indices = torch.topk(log_probs, beam_width)
                for k in range(beam_width):
                    next_idx = topk_indices[k].item()
                    next_log_prob = topk_log_probs[k].item()
                    new_context = torch.cat([context, torch.tensor([next_idx]).to(device)])
                    new_text = text + idx_to_char[next_idx]
                    new_log_prob = log_prob + next_log_prob
                    new_beams.append((new_text, new_context, new_log_prob))
            new_beams.sort(key=lambda x: x[2], reverse=True)
            beams = new_beams[:beam_width]
    return beams[0][0]


class SeedModel(torch.nn.Module):
    """The seed's interface: forward(x) -> logits, no state."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.inner = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)[0]


# ----- setup and timing -----------------------------------------------------------------------


def load_model(
    checkpoint: str | None, preset_name: str = "cpu"
) -> tuple[torch.nn.Module, Vocab, object, str]:
    if checkpoint:
        from engine.runs.checkpoint import load_checkpoint

        loaded = load_checkpoint(checkpoint, "cpu")
        return loaded.model, loaded.vocab, loaded.unigram, f"checkpoint {loaded.path}"
    if CORPUS.exists():
        chars = sorted(set(CORPUS.read_text(encoding="utf-8")))
    else:
        chars = sorted(set(PROMPT) | {chr(c) for c in range(ord("A"), ord("A") + 80)})[:65]
    vocab = Vocab(chars)
    model_settings, _ = preset("lstm", preset_name)
    torch.manual_seed(0)
    model = build_model(make_config("lstm", vocab_size=len(vocab), **model_settings)).eval()
    return model, vocab, None, f"random lstm, preset {preset_name}: {model_settings}"


@contextlib.contextmanager
def torch_backend(model: torch.nn.Module):
    """Single rows step in torch instead of NumPy (engine/models/numpy_step.py) inside."""
    before = os.environ.get("CHARLM_DECODE_BACKEND")
    os.environ["CHARLM_DECODE_BACKEND"] = "torch"
    try:
        yield
    finally:
        if before is None:
            del os.environ["CHARLM_DECODE_BACKEND"]
        else:
            os.environ["CHARLM_DECODE_BACKEND"] = before


def first_char_ms(gen: Generator, prompt: str, length: int, runs: int = 7) -> float:
    """Median milliseconds from calling `stream` to its first character (prompt fed, one step)."""
    times = []
    for i in range(runs):
        started = time.perf_counter()
        next(iter(gen.stream(prompt, SamplingParams(length=length, seed=i))))
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - started, out


def per_threads(counts: list[int], fn, *args, **kwargs) -> dict[int, float]:
    """Seconds of one call under each intra-op thread count."""
    seconds = {}
    for count in counts:
        torch.set_num_threads(count)
        seconds[count], _ = timed(fn, *args, **kwargs)
    return seconds


def speedups(ours: dict[int, float], seed: dict[int, float]) -> dict[str, float]:
    """Rates (higher is better) compared: each side at its best thread count, and each side
    at the same thread count."""
    out = {"best_vs_seed_best": max(ours.values()) / max(seed.values())}
    for count in sorted(seed):
        out[f"{count}_threads_each"] = ours[count] / seed[count]
    return {k: round(v, 1) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a trained checkpoint instead of a random model")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--beam-chars", type=int, default=200)
    parser.add_argument("--beam-width", type=int, default=10)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--stream-chars", type=int, default=500)
    parser.add_argument("--seed-chars", type=int, default=200)
    parser.add_argument("--seed-beam-steps", type=int, default=20)
    parser.add_argument("--full-baseline", action="store_true")
    parser.add_argument(
        "--presets", default="cpu,seed", help="LSTM presets to measure (random weights)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.full_baseline:
        args.seed_chars, args.seed_beam_steps = args.chars, args.beam_chars

    cpu_model, flags = cpu_info()
    report = {
        "benchmark": "generate_speed",
        "cpu_model": cpu_model,
        "native_bf16": native_bf16(flags, cpu_has_amx()),
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg_1min_before": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "presets": {},
    }
    names = ["checkpoint"] if args.checkpoint else [p for p in args.presets.split(",") if p]
    for name in names:
        model, vocab, unigram, described = load_model(args.checkpoint, name)
        report["presets"][name] = measure(args, model, vocab, unigram, described)
    report["load_avg_1min_after"] = (
        round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    )
    print(json.dumps(report))


def measure(args, model, vocab, unigram, described: str) -> dict:
    """Every figure for one model (see the module docstring)."""
    prompt = "".join(c for c in PROMPT if c in vocab.index)
    gen = Generator(model, vocab, unigram)
    char_to_idx, idx_to_char = vocab.index, dict(enumerate(vocab.chars))
    seed_model = SeedModel(model)
    counts = sorted({1, args.threads})
    torch.set_num_threads(args.threads)

    # Warm up both paths (first calls allocate and pick kernels).
    gen.generate(prompt, SamplingParams(length=50, seed=0))
    seed_generate_text(seed_model, prompt, 5, char_to_idx, idx_to_char, "cpu")

    # Every configuration is timed in each of --rounds interleaved rounds and its best
    # round kept: other processes on the cores come and go, and interleaving exposes
    # both sides to the same moments.
    sample = SamplingParams(length=args.chars, seed=1)
    beam = SamplingParams(beam_width=args.beam_width, length=args.beam_chars)
    batch_params = SamplingParams(length=args.stream_chars, seed=2)
    batch_chars = args.streams * args.stream_chars
    best: dict[str, float] = {}

    def keep(name: str, rate: float) -> None:
        best[name] = max(best.get(name, 0.0), rate)

    for _ in range(args.rounds):
        torch.set_num_threads(args.threads)
        cpu_started = time.process_time()
        seconds, texts = timed(gen.generate, prompt, sample)
        assert len(texts[0]) == args.chars
        keep("sample_cpu", args.chars / (time.process_time() - cpu_started))
        keep("stream", args.chars / timed(lambda: sum(1 for _ in gen.stream(prompt, sample)))[0])
        for n, seconds in per_threads(counts, gen.generate, prompt, sample).items():
            keep(f"sample_{n}", args.chars / seconds)
        with torch_backend(model):  # the same single stream, stepped in torch
            for n, seconds in per_threads(counts, gen.generate, prompt, sample).items():
                keep(f"sample_torch_{n}", args.chars / seconds)
        for n, seconds in per_threads(counts, gen.beam_search, prompt, beam).items():
            keep(f"beam_{n}", 1 / seconds)
        for n, seconds in per_threads(
            counts, gen.generate, prompt, batch_params, args.streams
        ).items():
            keep(f"batch_{n}", batch_chars / seconds)
        for n, seconds in per_threads(
            counts,
            seed_generate_text,
            seed_model,
            prompt,
            args.seed_chars,
            char_to_idx,
            idx_to_char,
            "cpu",
        ).items():
            keep(f"seed_sample_{n}", args.seed_chars / seconds)
        for n, seconds in per_threads(
            counts,
            seed_beam_search,
            seed_model,
            prompt,
            args.seed_beam_steps,
            char_to_idx,
            idx_to_char,
            "cpu",
            beam_width=args.beam_width,
        ).items():
            keep(f"seed_beam_{n}", args.seed_beam_steps / (seconds * args.beam_chars))
    torch.set_num_threads(args.threads)
    first_short = first_char_ms(gen, SHORT_PROMPT, args.chars)
    first_long = first_char_ms(gen, prompt, args.chars)
    ours_sample = {n: best[f"sample_{n}"] for n in counts}
    seed_sample = {n: best[f"seed_sample_{n}"] for n in counts}
    ours_beam = {n: best[f"beam_{n}"] for n in counts}
    seed_beam = {n: best[f"seed_beam_{n}"] for n in counts}
    ours_batch = {n: best[f"batch_{n}"] for n in counts}

    def rounded(values: dict, invert: bool = False) -> dict[str, float]:
        return {str(k): round(1 / v if invert else v, 2) for k, v in values.items()}

    single_speedup = speedups(ours_sample, seed_sample)
    beam_speedup = speedups(ours_beam, seed_beam)
    result = {
        "model": described,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(vocab),
        "threads": args.threads,
        "rounds": args.rounds,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "single_stream": {
            "chars": args.chars,
            "generate_chars_per_s": round(max(ours_sample.values()), 1),
            "generate_chars_per_s_by_threads": rounded(ours_sample),
            "generate_chars_per_cpu_s": round(best["sample_cpu"], 1),
            "stream_chars_per_s": round(best["stream"], 1),
            "first_char_ms_short_prompt": first_short,
            "first_char_ms_long_prompt": first_long,
            "long_prompt_chars": len(prompt),
            "decode_backend": decode_backend(),
            "torch_backend_chars_per_s_by_threads": rounded(
                {n: best[f"sample_torch_{n}"] for n in counts}
            ),
            "seed_chars_per_s_by_threads": rounded(seed_sample),
            "seed_chars_timed": args.seed_chars,
            "speedup": single_speedup,
        },
        "beam_search": {
            "width": args.beam_width,
            "chars": args.beam_chars,
            "seconds": round(1 / max(ours_beam.values()), 3),
            "seconds_by_threads": rounded(ours_beam, invert=True),
            "seed_seconds_by_threads": rounded(seed_beam, invert=True),
            "seed_steps_timed": args.seed_beam_steps,
            "speedup": beam_speedup,
        },
        "batched": {
            "streams": args.streams,
            "chars_each": args.stream_chars,
            "chars_per_s": round(max(ours_batch.values()), 1),
            "chars_per_s_by_threads": rounded(ours_batch),
        },
    }
    single = result["single_stream"]
    result["targets_met"] = {
        "sample_speedup>=20": single_speedup["best_vs_seed_best"] >= TARGETS["sample_speedup"],
        # The figure: the engine and the seed's method at the same thread count.
        "sample_speedup>=20_same_threads": min(
            v for k, v in single_speedup.items() if k.endswith("_threads_each")
        )
        >= TARGETS["sample_speedup"],
        "sample_chars_per_s>=2000": single["generate_chars_per_s"] >= TARGETS["sample_chars_per_s"],
        "first_char_ms<20": max(
            single["first_char_ms_short_prompt"], single["first_char_ms_long_prompt"]
        )
        < TARGETS["first_char_ms"],
        "beam_speedup>=30": beam_speedup["best_vs_seed_best"] >= TARGETS["beam_speedup"],
    }
    return result


if __name__ == "__main__":
    main()
