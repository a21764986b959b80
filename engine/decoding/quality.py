"""Text quality against references: chrF and BLEU of continuations of held-out prompts.

The seed notebook's last exercise. N prompts are cut from the held-out text at
evenly spaced positions (deterministic: the same split gives the same prompts);
the model continues each one, and the continuations are scored against the
text that really followed, at corpus level, with sacrebleu's chrF (character
n-gram F-score, the natural measure for a character model) and BLEU (word
n-grams). sacrebleu is an optional extra (`pip install 'charlm-tui[quality]'`):
the metrics are not written by hand here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from engine.decoding.generator import Generator
from engine.decoding.params import SamplingParams
from engine.errors import ConfigError

INSTALL_HINT = "pip install 'charlm-tui[quality]'"


def _sacrebleu() -> Any:
    try:
        import sacrebleu
    except ImportError:
        raise ConfigError(
            f"text quality needs the sacrebleu package, which is not installed: {INSTALL_HINT}"
        ) from None
    return sacrebleu


def chrf(hypotheses: list[str], references: list[str]) -> float:
    """Corpus-level chrF (0-100) of hypotheses against one reference each."""
    return float(_sacrebleu().corpus_chrf(hypotheses, [references]).score)


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus-level BLEU (0-100), sacrebleu's default 13a tokenisation."""
    return float(_sacrebleu().corpus_bleu(hypotheses, [references]).score)


@dataclass
class QualityResult:
    chrf: float
    bleu: float
    prompts: int
    prompt_chars: int
    length: int
    strategy: str
    temperature: float
    examples: list[dict]  # the first few: prompt, reference, continuation

    def as_dict(self) -> dict:
        return asdict(self)


def held_out_prompts(
    text: str, count: int, prompt_chars: int, length: int
) -> list[tuple[str, str]]:
    """(prompt, reference) pairs at `count` evenly spaced places of `text`."""
    if count < 1:
        raise ConfigError(f"--quality needs at least 1 prompt, got {count}")
    if prompt_chars < 1 or length < 1:
        raise ConfigError("prompt and continuation lengths must be at least 1")
    span = prompt_chars + length
    room = len(text) - span
    if room < 0:
        raise ConfigError(
            f"the held-out text ({len(text):,} chars) is shorter than one prompt and its "
            f"reference ({span} chars)"
        )
    starts = [round(i * room / max(count - 1, 1)) for i in range(count)] if count > 1 else [0]
    return [(text[s : s + prompt_chars], text[s + prompt_chars : s + span]) for s in starts]


def quality_eval(
    generator: Generator,
    text: str,
    count: int,
    *,
    prompt_chars: int = 64,
    length: int = 64,
    params: SamplingParams | None = None,
    examples: int = 3,
) -> QualityResult:
    """Continue `count` held-out prompts and score them against the true continuations."""
    _sacrebleu()  # say it is missing before generating anything
    params = params or SamplingParams(strategy="greedy", length=length, seed=0)
    params = replace(params, length=length, stop=())
    pairs = held_out_prompts(text, count, prompt_chars, length)
    prompts = [prompt for prompt, _ in pairs]
    references = [reference for _, reference in pairs]
    if params.strategy == "beam":
        continuations = [generator.generate(prompt, params, 1)[0] for prompt in prompts]
    else:
        continuations = generator.generate(prompts, params, 1)  # one batch, prompt-major
    return QualityResult(
        chrf=chrf(continuations, references),
        bleu=bleu(continuations, references),
        prompts=len(pairs),
        prompt_chars=prompt_chars,
        length=length,
        strategy=params.strategy,
        temperature=params.temperature,
        examples=[
            {"prompt": p, "reference": r, "continuation": c}
            for p, r, c in list(zip(prompts, references, continuations, strict=True))[:examples]
        ],
    )
