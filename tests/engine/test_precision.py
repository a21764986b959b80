"""`--precision auto`: the decision, its reasons and its cache, with probe timings injected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.device import native_bf16
from engine.errors import ConfigError
from engine.machine import precision as prec
from engine.machine.precision import CpuFacts, choose_precision, probe_step_seconds, verdict
from engine.models import build_model, make_config

CPU = torch.device("cpu")
SHAPE = {"model": {"hidden_size": 512}, "batch": [64, 128]}
AVX2 = CpuFacts("AMD EPYC (AVX2 only)", frozenset({"avx", "avx2", "fma"}))
ZEN4 = CpuFacts("AMD EPYC 9R14", frozenset({"avx2", "avx512f", "avx512_bf16"}))


def no_probe() -> tuple[float, float]:
    raise AssertionError("the probe must not run here")


class Probe:
    def __init__(self, fp32_s: float, bf16_s: float) -> None:
        self.timings = (fp32_s, bf16_s)
        self.calls = 0

    def __call__(self) -> tuple[float, float]:
        self.calls += 1
        return self.timings


def test_without_native_bf16_auto_is_fp32_and_nothing_is_measured(tmp_path: Path) -> None:
    choice = choose_precision(
        "auto", CPU, shape=SHAPE, probe=no_probe, cpu=AVX2, cache=tmp_path / "p.json"
    )
    assert (choice.name, choice.dtype) == ("fp32", None)
    assert choice.label == "fp32 (no native bf16 on this CPU)"
    assert not (tmp_path / "p.json").exists()


def test_native_bf16_probes_once_then_the_cache_answers(tmp_path: Path) -> None:
    cache = tmp_path / "p.json"
    probe = Probe(0.38, 0.20)
    first = choose_precision("auto", CPU, shape=SHAPE, probe=probe, cpu=ZEN4, cache=cache)
    assert (first.name, first.dtype) == ("bf16", torch.bfloat16)
    assert first.label == "bf16 (1.9x faster here)"
    assert probe.calls == 1
    stored = json.loads(cache.read_text())
    (key,) = stored
    assert json.loads(key)["cpu"] == ZEN4.model and json.loads(key)["torch"] == torch.__version__
    again = choose_precision("auto", CPU, shape=SHAPE, probe=no_probe, cpu=ZEN4, cache=cache)
    assert again == first


def test_the_verdict_is_per_shape_and_per_cpu(tmp_path: Path) -> None:
    cache = tmp_path / "p.json"
    choose_precision("auto", CPU, shape=SHAPE, probe=Probe(2.0, 1.0), cpu=ZEN4, cache=cache)
    small = {"model": {"hidden_size": 64}, "batch": [16, 32]}
    probe = Probe(1.0, 1.5)
    choice = choose_precision("auto", CPU, shape=small, probe=probe, cpu=ZEN4, cache=cache)
    assert probe.calls == 1 and choice.name == "fp32"
    assert choice.reason == "bf16 was 0.67x of its speed here"
    other_cpu = CpuFacts("Neoverse-V2", frozenset({"fp", "asimd", "bf16"}))
    probe = Probe(2.0, 1.0)
    choose_precision("auto", CPU, shape=SHAPE, probe=probe, cpu=other_cpu, cache=cache)
    assert probe.calls == 1
    assert len(json.loads(cache.read_text())) == 3


def test_a_tie_keeps_fp32() -> None:
    assert verdict(1.0, 0.98).name == "fp32"  # 1.02x: not worth the rounding
    assert verdict(1.0, 0.9).name == "bf16"
    assert verdict(1.0, float("nan")).reason == "the bf16 probe failed"
    assert verdict(1.0, float("inf")).label == "fp32 (bf16 kernels fail on this CPU)"


def test_explicit_precision_overrides_without_measuring(tmp_path: Path) -> None:
    cache = tmp_path / "p.json"
    bf16 = choose_precision("bf16", CPU, shape=SHAPE, probe=no_probe, cpu=AVX2, cache=cache)
    assert bf16.label == "bf16 (--precision bf16)"
    fp32 = choose_precision("fp32", CPU, shape=SHAPE, probe=no_probe, cpu=ZEN4, cache=cache)
    assert fp32.label == "fp32 (--precision fp32)"
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        choose_precision("fp16", CPU, shape=SHAPE, probe=no_probe, cpu=ZEN4, cache=cache)


def test_without_a_probe_only_a_cached_verdict_counts(tmp_path: Path) -> None:
    """DDP ranks may not measure (they could disagree): fp32 unless a verdict is cached."""
    cache = tmp_path / "p.json"
    choice = choose_precision("auto", CPU, shape=SHAPE, probe=None, cpu=ZEN4, cache=cache)
    assert choice.name == "fp32" and "not measured" in choice.reason
    choose_precision("auto", CPU, shape=SHAPE, probe=Probe(2.0, 1.0), cpu=ZEN4, cache=cache)
    assert choose_precision("auto", CPU, shape=SHAPE, probe=None, cpu=ZEN4, cache=cache).name == (
        "bf16"
    )


def test_a_corrupt_cache_is_measured_again(tmp_path: Path) -> None:
    cache = tmp_path / "p.json"
    cache.write_text("{not json")
    probe = Probe(2.0, 1.0)
    assert choose_precision("auto", CPU, shape=SHAPE, probe=probe, cpu=ZEN4, cache=cache).name == (
        "bf16"
    )
    assert probe.calls == 1 and json.loads(cache.read_text())


@pytest.mark.parametrize(
    ("flags", "amx", "expected"),
    [
        ({"avx2", "avx512f"}, False, None),
        ({"avx512f", "avx512_bf16"}, False, "avx512_bf16"),
        ({"amx_tile", "amx_bf16", "avx512_bf16"}, False, "amx_bf16"),
        (set(), True, "amx_bf16"),
        ({"fp", "asimd", "bf16"}, False, "bf16"),
    ],
)
def test_native_bf16_flags(flags: set[str], amx: bool, expected: str | None) -> None:
    assert native_bf16(frozenset(flags), amx) == expected


def test_the_probe_times_both_and_leaves_the_random_state_alone() -> None:
    model = build_model(
        make_config("lstm", vocab_size=11, embed_dim=8, hidden_size=16, num_layers=1)
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    fp32_s, bf16_s = probe_step_seconds(model, 2, 8, 11, CPU, steps=1)
    assert 0 < fp32_s < 60 and bf16_s > 0  # bf16 is inf where its kernels fail (AVX2 only)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_the_trainer_reports_its_precision_and_why(
    monkeypatch: pytest.MonkeyPatch, text_file: Path
) -> None:
    from engine.config.train import TrainConfig
    from engine.data.corpus import load_corpus
    from engine.training.events import StatusEvent
    from engine.training.trainer import Trainer

    monkeypatch.setattr(prec.CpuFacts, "here", classmethod(lambda cls: ZEN4))
    monkeypatch.setattr(prec, "_cache_path", lambda: text_file.parent / "verdicts.json")
    monkeypatch.setattr(prec, "probe_step_seconds", lambda *a, **k: (0.3, 0.1))
    events: list[object] = []
    config = TrainConfig(
        batch_size=4, seq_len=8, max_steps=2, eval_interval=2, eval_chars=64, device="cpu"
    )
    # A Transformer: its bf16 matmuls run (slowly) on any CPU, oneDNN's bf16 LSTM does not.
    model = make_config("transformer", n_layer=1, n_head=2, n_embd=16, block_size=8)
    trainer = Trainer(load_corpus(str(text_file)), model, config, on_event=events.append)
    result = trainer.run()
    assert (result.precision, result.precision_reason) == ("bf16", "3.0x faster here")
    assert trainer.amp is torch.bfloat16
    training = [e for e in events if isinstance(e, StatusEvent) and e.state == "training"]
    assert training and all(e.message == "bf16 (3.0x faster here)" for e in training)
