"""Big-corpus ingest: encoding speed, cached reload, and training memory. Prints JSON.

For each size (default 100 MB and 1 GB, MB = 10^6 bytes) a corpus of random
words (about 0.1% of them non-ASCII, so UTF-8's multi-byte path is exercised)
is generated in a temporary directory, and next to it (--other-scripts, default
CJK and Cyrillic at 100 MB) corpora that are almost all multi-byte: random
words of CJK ideographs (3 bytes each in UTF-8, a vocabulary of ~3,000
characters, the ids no longer fit in uint8) and of Cyrillic letters (2 bytes
each). Each is measured in fresh subprocesses so that each peak resident set
size (VmHWM) is its own:

- encode: the first load, which encodes the text into the cache;
- cached load: the second load, which memory-maps the cache;
- train (largest size only): a few training steps on the memory-mapped ids.

The generated text is in the OS page cache when it is encoded, so the speed is
the encoder's, not the disk's. Everything is deleted afterwards.

    .venv/bin/python bench/ingest.py [--sizes 100,1000] [--train-steps 20]
                                     [--other-scripts cjk:100,cyrillic:100]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 1_000_000


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM; ru_maxrss where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def status_mb(field: str) -> float:
    """A memory figure from /proc/self/status (VmRSS, RssAnon, RssFile), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return float("nan")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _ascii_words(rng) -> list[bytes]:
    import numpy as np

    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    words = [bytes(rng.choice(letters, int(rng.integers(1, 11)))) for _ in range(20_000)]
    return words + [w.encode() for w in ("café", "naïve", "über", "—", "Ελλάδα", "日本語", "😀")]


def _script_words(rng, script: str) -> list[bytes]:
    """Words of one script: CJK ideographs (3,000 of them, 1-4 per word, no spaces in real
    text but kept here for line structure) or Cyrillic letters (1-11 per word)."""
    import numpy as np

    if script == "cjk":
        alphabet = [chr(0x4E00 + i) for i in range(3_000)] + ["，", "。", "、"]
        lengths = (1, 5)
    elif script == "cyrillic":
        alphabet = [chr(c) for c in range(ord("а"), ord("я") + 1)] + ["ё", "Ж", "Щ", "—"]
        lengths = (1, 12)
    else:
        raise SystemExit(f"unknown script {script!r}: ascii, cjk or cyrillic")
    letters = np.array(alphabet, dtype=object)
    return [
        "".join(rng.choice(letters, int(rng.integers(*lengths)))).encode() for _ in range(20_000)
    ]


def generate(path: Path, size: int, seed: int = 0, script: str = "ascii") -> None:
    """`size` bytes of random words in lines, Zipf-ish frequencies.

    ascii: a few non-ASCII words among ASCII ones; cjk / cyrillic: (almost) all
    multi-byte. A block is cut at a character boundary, so the file is valid UTF-8.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    words = _ascii_words(rng) if script == "ascii" else _script_words(rng, script)
    weights = 1.0 / np.arange(1, len(words) + 1)
    if script == "ascii":
        weights[-7:] = weights[:-7].sum() * 0.001 / 7
    weights /= weights.sum()
    table = np.array(words, dtype=object)
    written = 0
    with open(path, "wb") as out:
        while written < size:
            picks = table[rng.choice(len(table), 400_000, p=weights)]
            picks[rng.random(len(picks)) < 0.08] += b"\n"
            block = b" ".join(picks)[: size - written]
            block = block.decode("utf-8", errors="ignore").encode("utf-8")  # whole chars
            if not block:
                break
            out.write(block)
            written += len(block)


# ----- the measured workers (each in a fresh process) -----------------------------------


def work_encode(path: Path) -> dict:
    from engine.data.corpus import load_corpus

    started, cpu_started = time.perf_counter(), cpu_seconds()
    corpus = load_corpus(str(path))
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    size = path.stat().st_size
    return {
        "encode_s": round(seconds, 3),
        "encode_mb_per_s": round(size / MB / seconds, 1),
        # CPU time too: on a busy machine wall time includes waiting for a core.
        "encode_cpu_s": round(cpu, 3),
        "encode_mb_per_cpu_s": round(size / MB / cpu, 1),
        "encode_peak_rss_mb": round(peak_rss_mb(), 1),
        "chars": len(corpus),
        "vocab_size": len(corpus.vocab),
        "ids_dtype": str(corpus.ids.dtype),
    }


def work_load(path: Path) -> dict:
    from engine.data.corpus import load_corpus

    started = time.perf_counter()
    corpus = load_corpus(str(path))
    seconds = time.perf_counter() - started
    import numpy as np

    return {
        "cached_load_s": round(seconds, 4),
        "cached_load_peak_rss_mb": round(peak_rss_mb(), 1),
        "memory_mapped": isinstance(corpus.ids, np.memmap),
    }


def work_train(path: Path, steps: int) -> dict:
    from engine.config.presets import preset
    from engine.config.train import TrainConfig
    from engine.data.corpus import load_corpus
    from engine.models import make_config
    from engine.training.trainer import Trainer

    baseline = status_mb("VmRSS")
    corpus = load_corpus(str(path))
    model_settings, train_settings = preset("lstm", "cpu")
    train_settings.update(
        device="cpu", max_steps=steps, eval_interval=10**9, eval_chars=8192, final_eval=False
    )
    started = time.perf_counter()
    trainer = Trainer(corpus, make_config("lstm", **model_settings), TrainConfig(**train_settings))
    step_times: list[float] = []
    trainer.on_event = lambda event: (
        step_times.append(time.perf_counter()) if getattr(event, "kind", "") == "step" else None
    )
    result = trainer.run()
    warm = step_times[-1] - step_times[0] if len(step_times) > 1 else float("nan")
    return {
        "corpus_mb": round(path.stat().st_size / MB),
        "model": "lstm (cpu preset)",
        "steps": result.steps,
        "batch": f"{train_settings['batch_size']} x {train_settings['seq_len']}",
        "seconds": round(time.perf_counter() - started, 2),
        "first_step_s": round(step_times[0] - started, 2) if step_times else None,
        "seconds_per_step_after_first": round(warm / max(len(step_times) - 1, 1), 3),
        "precision": trainer.precision.label,
        "val_loss_windows": round(result.val_loss, 4),
        "ids_on_host_memmap": trainer.batches.device_ids is None,
        "rss_after_imports_mb": baseline,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        # File-backed pages of the memory map count in RSS but are clean page cache
        # the kernel can drop at will; anonymous memory is what training really holds.
        "rss_anon_mb_at_end": status_mb("RssAnon"),
        "rss_file_mb_at_end": status_mb("RssFile"),
    }


def run_worker(kind: str, path: Path, cache: Path, steps: int = 0) -> dict:
    env = {**os.environ, "CHARLM_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, __file__, "--worker", kind, str(path), "--train-steps", str(steps)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cpu_model() -> str:
    sys.path.insert(0, str(ROOT))
    from engine.device import cpu_info

    return cpu_info()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="corpus sizes in MB (10^6 bytes)")
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument(
        "--other-scripts",
        default="cjk:100,cyrillic:100",
        help="SCRIPT:MB,... corpora in other scripts (cjk, cyrillic); '' for none",
    )
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, path = args.worker
        if kind == "encode":
            payload = work_encode(Path(path))
        elif kind == "load":
            payload = work_load(Path(path))
        else:
            payload = work_train(Path(path), args.train_steps)
        print(json.dumps(payload))
        return

    import numpy as np

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    runs = [("ascii", size) for size in sizes]
    for item in filter(None, (part.strip() for part in args.other_scripts.split(","))):
        script, _, size = item.partition(":")
        runs.append((script, int(size or 100)))
    report: dict = {
        "bench": "ingest",
        "machine": {
            "cpu_model": _cpu_model(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "sizes": [],
    }
    with tempfile.TemporaryDirectory(prefix="charlm-ingest-") as tmp:
        cache = Path(tmp) / "cache"
        for script, size_mb in runs:
            path = Path(tmp) / f"corpus-{script}-{size_mb}mb.txt"
            started = time.perf_counter()
            generate(path, size_mb * MB, seed=size_mb, script=script)
            generate_s = time.perf_counter() - started
            row = {"script": script, "size_mb": size_mb, "bytes": path.stat().st_size}
            row.update(run_worker("encode", path, cache))
            row.update(run_worker("load", path, cache))
            row["generate_s"] = round(generate_s, 1)
            report["sizes"].append(row)
            print(f"{script} {size_mb} MB: {json.dumps(row)}", file=sys.stderr)
            if script == "ascii" and size_mb == max(sizes) and args.train_steps > 0:
                report["train"] = run_worker("train", path, cache, args.train_steps)
            path.unlink()
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
