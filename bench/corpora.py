"""Default training on several kinds of corpus, and a labelled folder's conditioned samples.

Every corpus is built at run time in a temporary directory from what this
machine has (nothing is downloaded or committed):

- names: ~30k real-looking first names, one per line, sampled deterministically
  from a character bigram model of a few hundred real names written below;
- prose: tinyshakespeare read in place (../shared/corpora), and the sample verse;
- code: the running Python's own top-level standard-library modules (about
  --code-kb KB, in name order);
- styles: a labelled folder of four labels, the largest 10x the smallest:
  shakespeare (--label-kb), code (1/2 of it), names (1/4), verse (1/10).

Each corpus is trained by the real command, `charlm-tui train --time-budget S
--json` (with `--conditional` for styles), and reported: the final and best val
loss, steps, epochs (training chars seen / training split), and the size chosen
with its reason (whatever keys of that kind the train JSON has, and what the
command said on stderr before training: `said_at_start`). For styles,
`generate --condition L --guidance G` draws --samples samples per label at
guidance 1 and 2, and an independent classifier (naive Bayes over a character
4-gram language model per label, Witten-Bell interpolated, uniform prior, built
from the same amount of each label's training split: the smallest label's)
assigns each sample to a label; its accuracy on pieces
of the same length of real held-out text of each label is the ceiling. Target:
the share assigned to the asked label >= 90% of that accuracy at guidance <= 2.

    python bench/corpora.py [--budget 120] [--only names,shakespeare,verse,code,styles]
                            [--samples 30] [--length 200] [--preset P] [--max-steps N]
                            [--set KEY=VALUE ...] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = next(
    (
        p
        for p in (
            Path(os.environ.get("CHARLM_SHAKESPEARE", "/nonexistent")),
            ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt",
            Path("/work/shared/corpora/tinyshakespeare.txt"),
        )
        if p.exists()
    ),
    None,
)
KINDS = ("names", "shakespeare", "verse", "code", "styles")
VAL_FRACTION = 0.1  # the trainer's default: each label's (or the corpus's) last 10%

SEED_NAME_TEXT = """
emma olivia ava isabella sophia mia charlotte amelia harper evelyn abigail emily
elizabeth mila ella avery sofia camila aria scarlett victoria madison luna grace
chloe penelope layla riley zoey nora lily eleanor hannah lillian addison aubrey
ellie stella natalie zoe leah hazel violet aurora savannah audrey brooklyn bella
claire skylar lucy paisley everly anna caroline nova genesis emilia kennedy
samantha maya willow kinsley naomi aaliyah elena sarah ariana allison gabriella
alice madelyn cora ruby eva serenity autumn adeline hailey gianna valentina isla
eliana quinn nevaeh ivy sadie piper lydia alexa josephine emery julia delilah
arianna vivian kaylee sophie brielle madeline liam noah william james oliver
benjamin elijah lucas mason logan alexander ethan jacob michael daniel henry
jackson sebastian aiden matthew samuel david joseph carter owen wyatt john jack
luke jayden dylan grayson levi isaac gabriel julian mateo anthony jaxon lincoln
joshua christopher andrew theodore caleb ryan asher nathan thomas leo isaiah
charles josiah hudson christian hunter connor eli ezra aaron landon adrian
jonathan nolan jeremiah easton elias colton cameron carson robert angel maverick
nicholas dominic jaxson greyson adam ian austin santiago jordan cooper brayden
roman evan ezekiel xavier jose jace jameson leonardo bryson axel everett parker
kayden miles sawyer jason declan weston micah ayden wesley luca vincent damian
zachary silas gavin chase kai emmett harrison nathaniel kingston cole tyler
bennett bentley ryker tristan brandon kevin luis george ashton rowan braxton
ryder gael ivan diego maxwell max carlos kaiden juan maddox justin waylon calvin
giovanni jonah abel jayce jesus amir king beau camden alex jasper malachi brody
jude blake emmanuel eric brooks elliot antonio abraham timothy finn rhett elliott
edward august xander alan dean lorenzo bryce karter victor milo miguel hayden
graham grant zion tucker jesse zayden joel richard patrick emiliano avery
"""
SEED_NAMES = SEED_NAME_TEXT.split()


def _note(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def names_like(count: int, seed: int = 0) -> list[str]:
    """`count` distinct names (3-12 letters) from a character model of SEED_NAMES: the
    next letter follows the last two (the last one, 1 time in 5, for variety)."""
    follows: dict[str, Counter] = defaultdict(Counter)
    for name in SEED_NAMES:
        padded = "^^" + name + "$"
        for i in range(2, len(padded)):
            follows[padded[i - 2 : i]][padded[i]] += 1
            follows[padded[i - 1]][padded[i]] += 1
    table = {a: (list(c), list(c.values())) for a, c in follows.items()}
    rng = random.Random(seed)
    seen: set[str] = set()
    names: list[str] = []
    while len(names) < count:
        out = "^^"
        while len(out) < 16:
            context = out[-2:] if rng.random() < 0.8 else out[-1]
            chars, weights = table[context]
            char = rng.choices(chars, weights)[0]
            if char == "$":
                break
            out += char
        name = out[2:]
        if 3 <= len(name) <= 12 and name not in seen:
            seen.add(name)
            names.append(name)
    return names


def stdlib_code(limit: int) -> str:
    """The interpreter's top-level stdlib modules in name order, up to `limit` chars."""
    parts, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text[: limit - size])
        size += len(parts[-1])
        if size >= limit:
            break
    return "".join(parts)


def build(work: Path, args: argparse.Namespace) -> dict[str, Path]:
    """The corpora, written under `work` (tinyshakespeare is read in place)."""
    names = "\n".join(names_like(args.names, seed=args.seed)) + "\n"
    verse = (ROOT / "sample_corpora" / "verse.txt").read_text(encoding="utf-8")
    code = stdlib_code(args.code_kb * 1000)
    out: dict[str, Path] = {}
    for kind, text in (("names", names), ("verse", verse), ("code", code)):
        out[kind] = work / f"{kind}.txt"
        out[kind].write_text(text, encoding="utf-8")
    if SHAKESPEARE is not None:
        out["shakespeare"] = SHAKESPEARE
    big = args.label_kb * 1000
    shakespeare = SHAKESPEARE.read_text(encoding="utf-8") if SHAKESPEARE else verse * 20
    styles = work / "styles"
    styles.mkdir(exist_ok=True)
    for label, text, size in (
        ("shakespeare", shakespeare, big),
        ("code", stdlib_code(args.code_kb * 1000 + big)[args.code_kb * 1000 :], big // 2),
        ("names", names, big // 4),
        ("verse", verse, big // 10),
    ):
        (styles / f"{label}.txt").write_text(text[:size], encoding="utf-8")
    out["styles"] = styles
    return out


class NgramClassifier:
    """Naive Bayes with a character 4-gram language model per label (Peng & Schuurmans'
    n-gram naive Bayes): P(text | label) is the product of P(c | previous 3 chars), each
    Witten-Bell interpolated with the 2-, 1- and 0-char contexts down to an add-one
    unigram over every label's characters; uniform prior. Interpolation, not a flat
    floor for unseen n-grams, so text no label has seen is not given to the smallest."""

    ORDER = 4

    def __init__(self, texts: dict[str, str]) -> None:
        self.chars = len(set("".join(texts.values()))) + 1  # +1: an unseen character
        self.models = {name: self._counts(text) for name, text in texts.items()}

    def _counts(self, text: str) -> dict[str, Counter]:
        follows: dict[str, Counter] = defaultdict(Counter)
        for i, char in enumerate(text):
            for k in range(self.ORDER):
                if i >= k:
                    follows[text[i - k : i]][char] += 1
        return dict(follows)

    def _prob(self, model: dict[str, Counter], history: str, char: str) -> float:
        seen = model[""]
        p = (seen[char] + 1) / (seen.total() + self.chars)
        for k in range(1, min(len(history), self.ORDER - 1) + 1):
            after = model.get(history[-k:])
            if after is None:
                break
            total, kinds = after.total(), len(after)
            p = (after[char] + kinds * p) / (total + kinds)
        return p

    def log_likelihood(self, text: str, name: str) -> float:
        model = self.models[name]
        return sum(
            math.log(self._prob(model, text[max(0, i - 3) : i], c)) for i, c in enumerate(text)
        )

    def classify(self, text: str) -> str:
        return max(self.models, key=lambda name: self.log_likelihood(text, name))


def cli(*command: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "charlm_tui", *command, "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        sys.exit(f"{command[0]} failed: {done.stderr.strip().splitlines()[-1:]}")
    result = json.loads(done.stdout)
    # What the command said before training (the size, regularisation, balance chosen and
    # why): the lines before the first evaluation, joined where the terminal wrapped them.
    said = " ".join(done.stderr.split("\nstep ")[0].split())
    return {**result, "_said_at_start": said}


def sizing(result: dict) -> dict:
    """The size chosen and why, from whichever keys the train JSON has."""
    words = ("reason", "sizing", "chosen", "choice", "regular", "note", "best_step", "epochs")
    words += ("reported", "last_val_loss")
    picked = {k: v for k, v in result.items() if any(w in k for w in words)}
    model = result.get("model") or {}
    picked["model_shape"] = {
        k: v
        for k, v in model.items()
        if k in ("model_type", "hidden_size", "num_layers", "embed_dim", "n_layer", "n_embd")
        or "dropout" in k
        or k == "weight_drop"
    }
    train = result.get("train") or {}
    picked["train_settings"] = {
        k: train.get(k)
        for k in ("batch_size", "seq_len", "lr", "weight_decay", "label_balance", "patience")
        if k in train
    }
    return picked


def train(corpus: Path, out: Path, args: argparse.Namespace, extra: list[str]) -> dict:
    command = ["train", "--corpus", str(corpus), "--out", str(out), "--seed", str(args.seed)]
    command += ["--time-budget", str(args.budget), *extra]
    if args.preset:
        command += ["--preset", args.preset]
    if args.max_steps:
        command += ["--max-steps", str(args.max_steps)]
    for item in args.set:
        command += ["--set", item]
    _note(f"training {out.name} for {args.budget:g} s")
    started = time.monotonic()
    result = cli(*command)
    train_chars = corpus_chars(corpus) * (1 - VAL_FRACTION)
    cfg = result.get("train") or {}
    seen = result["steps"] * cfg.get("batch_size", 0) * cfg.get("seq_len", 0)
    return {
        "wall_s": round(time.monotonic() - started, 1),
        "val_loss": result["val_loss"],
        "best_val_loss": result.get("best_val_loss"),
        "steps": result["steps"],
        "stopped_by": result.get("stopped_by"),
        "epochs": result.get("epochs", round(seen / train_chars, 2) if train_chars else None),
        "parameters": result.get("parameters"),
        "partial_eval": result.get("partial_eval"),
        "label_val_loss": result.get("label_val_loss") or None,
        **sizing(result),
        "said_at_start": result.get("_said_at_start"),
    }


def corpus_chars(path: Path) -> int:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return sum(len(p.read_text(encoding="utf-8", errors="replace")) for p in files)


def styles_report(folder: Path, run: Path, args: argparse.Namespace) -> dict:
    """Conditioned samples by label and guidance, classified, beside the classifier's ceiling."""
    texts = {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt"))}
    cut = {name: int(len(text) * (1 - VAL_FRACTION)) for name, text in texts.items()}
    # As much training text of every label (the smallest's): a label with less text would
    # otherwise smooth more and win whatever text none of them has seen.
    same = min(cut.values())
    classifier = NgramClassifier({name: text[:same] for name, text in texts.items()})
    length = args.length
    ceiling = {}
    for name, text in texts.items():
        tail = text[cut[name] :]
        pieces = [tail[i : i + length] for i in range(0, len(tail) - length + 1, length)]
        ceiling[name] = sum(classifier.classify(p) == name for p in pieces) / max(len(pieces), 1)
    shares: dict[str, dict] = {}
    for guidance in args.guidance:
        key = f"guidance_{guidance:g}"
        _note(f"sampling at guidance {guidance:g}")
        shares[key] = {}
        for name in texts:
            samples = cli(
                "generate", "--checkpoint", str(run), "--condition", name,
                "--guidance", str(guidance), "--num-samples", str(args.samples),
                "--length", str(length), "--seed", str(args.seed), "--temperature", "1.0",
            )["samples"]  # fmt: skip
            shares[key][name] = sum(classifier.classify(s) == name for s in samples) / len(samples)
        shares[key]["mean"] = sum(shares[key][n] for n in texts) / len(texts)
    ceiling["mean"] = sum(ceiling[n] for n in texts) / len(texts)
    ratio = {k: round(v["mean"] / ceiling["mean"], 3) for k, v in shares.items()}
    return {
        "label_chars": {name: len(text) for name, text in texts.items()},
        "samples_per_label": args.samples,
        "sample_length": length,
        "asked_label_share": shares,
        "classifier_on_held_out_text": ceiling,
        "share_over_classifier": ratio,
        "target": ">= 0.9 of the classifier's accuracy at guidance <= 2",
        "target_met": any(v >= 0.9 for v in ratio.values()),
    }


def machine() -> dict:
    sys.path.insert(0, str(ROOT / "bench"))
    from train_quality import cpu_description

    return {**cpu_description(), "cores": os.cpu_count(), "load_1min": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per train run")
    parser.add_argument("--only", default=",".join(KINDS), help="which corpora, comma-separated")
    parser.add_argument("--names", type=int, default=30_000)
    parser.add_argument("--code-kb", type=int, default=1600)
    parser.add_argument("--label-kb", type=int, default=240, help="the largest label's size")
    parser.add_argument("--samples", type=int, default=30, help="samples per label")
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--preset", default=None, help="default: the CLI's own choice")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], help="passed on to train")
    parser.add_argument("--work", type=Path, default=None, help="keep corpora and runs here")
    args = parser.parse_args()
    only = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = set(only) - set(KINDS)
    if unknown:
        parser.error(f"unknown corpora {sorted(unknown)}: choose from {', '.join(KINDS)}")
    report: dict = {"machine": machine(), "budget_s": args.budget, "preset": args.preset}
    report["settings"] = args.set
    with tempfile.TemporaryDirectory(prefix="charlm-corpora-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        corpora = build(work, args)
        for kind in only:
            if kind not in corpora:
                report[kind] = {"skipped": "tinyshakespeare is not on this machine"}
                continue
            run = work / f"run-{kind}"
            extra = ["--conditional"] if kind == "styles" else []
            report[kind] = {
                "chars": corpus_chars(corpora[kind]),
                **train(corpora[kind], run, args, extra),
            }
            if kind == "styles":
                report[kind].update(styles_report(corpora[kind], run, args))
    report["machine"]["load_1min_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
