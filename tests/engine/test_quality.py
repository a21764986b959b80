"""eval --quality and compare --reference: chrF and BLEU (sacrebleu) against the true text."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.decoding.params import SamplingParams
from engine.decoding.quality import held_out_prompts, quality_eval
from engine.errors import ConfigError
from tests.helpers import assert_user_error, cli_json, write_markov

pytest.importorskip("sacrebleu")

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(200))
PAIRS = held_out_prompts(TEXT, 8, 40, 40)


class Oracle:
    """A stand-in generator that continues every prompt with the text that followed it."""

    def __init__(self, pairs: list[tuple[str, str]], wrong: bool = False) -> None:
        self.truth = dict(pairs)
        self.wrong = wrong

    def generate(self, prompts, params: SamplingParams, num_samples: int = 1) -> list[str]:
        prompts = [prompts] if isinstance(prompts, str) else prompts
        true = [self.truth[prompt][: params.length] for prompt in prompts]
        return ["#" * len(t) for t in true] if self.wrong else true


def test_prompts_are_evenly_spaced_and_deterministic() -> None:
    pairs = held_out_prompts(TEXT, 5, 30, 20)
    assert len(pairs) == 5
    assert pairs == held_out_prompts(TEXT, 5, 30, 20)
    assert pairs[0] == (TEXT[:30], TEXT[30:50])
    assert pairs[-1] == (TEXT[-50:-20], TEXT[-20:])  # the last one ends at the end
    assert all(len(p) == 30 and len(r) == 20 for p, r in pairs)
    with pytest.raises(ConfigError, match="shorter"):
        held_out_prompts("short", 2, 30, 20)
    with pytest.raises(ConfigError, match="at least 1"):
        held_out_prompts(TEXT, 0, 30, 20)


def test_perfect_and_hopeless_continuations() -> None:
    perfect = quality_eval(Oracle(PAIRS), TEXT, 8, prompt_chars=40, length=40)  # type: ignore[arg-type]
    assert perfect.chrf == pytest.approx(100.0)
    assert perfect.bleu == pytest.approx(100.0)
    assert perfect.prompts == 8 and len(perfect.examples) == 3
    assert perfect.examples[0]["continuation"] == perfect.examples[0]["reference"]
    hopeless = quality_eval(Oracle(PAIRS, wrong=True), TEXT, 8, prompt_chars=40, length=40)  # type: ignore[arg-type]
    assert hopeless.chrf == pytest.approx(0.0) and hopeless.bleu == pytest.approx(0.0)


def test_without_sacrebleu_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    with pytest.raises(ConfigError, match=r"charlm-tui\[quality\]"):
        quality_eval(Oracle(PAIRS), TEXT, 2)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from engine.config.train import TrainConfig
    from engine.data.corpus import load_corpus
    from engine.training.trainer import Trainer
    from tests.helpers import tiny_config

    root = tmp_path_factory.mktemp("quality")
    corpus, _ = write_markov(root / "markov.txt", 20_000)
    config = TrainConfig(
        batch_size=8, seq_len=16, max_steps=40, eval_interval=40, eval_chars=256, device="cpu"
    )
    Trainer(load_corpus(str(corpus)), tiny_config("lstm"), config, out_dir=root / "run").run()
    return root / "run", corpus


def test_cli_eval_quality(run: tuple[Path, Path], cli_main, monkeypatch) -> None:
    out, corpus = run
    args = ["eval", "--checkpoint", out, "--corpus", corpus, "--device", "cpu"]
    payload = cli_json(cli_main(*args, "--quality", "6", "--quality-length", "24", "--json"))
    assert payload["loss"] > 0
    quality = payload["quality"]
    assert quality["prompts"] == 6 and quality["length"] == 24
    assert 0.0 <= quality["chrf"] <= 100.0 and 0.0 <= quality["bleu"] <= 100.0
    example = quality["examples"][0]
    assert len(example["prompt"]) == len(example["reference"]) == 24
    assert len(example["continuation"]) == 24
    assert_user_error(cli_main(*args, "--quality", "0"), "at least 1")
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    assert_user_error(cli_main(*args, "--quality", "3"), "pip install 'charlm-tui[quality]'")


def test_compare_reference_gives_chrf(run: tuple[Path, Path]) -> None:
    from engine.decoding.compare import compare_strategies
    from engine.decoding.generator import Generator
    from engine.runs.checkpoint import load_checkpoint

    out, _ = run
    loaded = load_checkpoint(out)
    generator = Generator(loaded.model, loaded.vocab, loaded.unigram)
    greedy = generator.generate("ab", SamplingParams(strategy="greedy", length=30), 1)[0]
    rows = compare_strategies(
        generator,
        "ab",
        length=30,
        num_samples=2,
        seed=1,
        strategies=[("greedy", {"strategy": "greedy"}), ("temperature 1.5", {"temperature": 1.5})],
        reference=greedy,
    )
    assert rows[0].chrf == pytest.approx(100.0)  # greedy reproduces itself
    assert rows[1].chrf < 100.0
    assert rows[0].as_dict()["chrf"] == rows[0].chrf
    assert (
        compare_strategies(
            generator,
            "ab",
            length=5,
            seed=1,
            strategies=[("greedy", {"strategy": "greedy"})],
        )[0].chrf
        is None
    )
