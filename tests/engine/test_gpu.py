"""The GPU fast path: bf16, fused AdamW, on-device batches, compile with a clean fallback.

Tests marked `gpu` need CUDA and are skipped without it (CI has none). The rest
check, on the CPU, the parts of the fast path that do not need a GPU: the
fallback from a torch.compile that fails at its first step, the narrow device
dtype of the ids, generator states that cross device kinds, and the one-line
error for `--device cuda` on a machine without CUDA.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config.presets import preset
from engine.config.train import TrainConfig
from engine.data.corpus import load_corpus
from engine.models import build_model, make_config
from engine.runs.checkpoint import load_checkpoint
from engine.training.batches import BatchSource, _copy_to_device, _device_dtype
from engine.training.events import StatusEvent, StepEvent
from engine.training.trainer import Trainer

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
needs_no_cuda = pytest.mark.skipif(CUDA, reason="checks the behaviour without CUDA")


def tiny(model_type: str, **train: object) -> tuple[object, TrainConfig]:
    model_settings, train_settings = preset(model_type, "tiny")
    train_settings.update({"final_eval": False, "eval_interval": 1000, **train})
    return make_config(model_type, **model_settings), TrainConfig.from_dict(train_settings)


class Recorder:
    def __init__(self) -> None:
        self.events: list[object] = []

    def __call__(self, event: object) -> None:
        self.events.append(event)

    @property
    def losses(self) -> list[float]:
        return [e.loss for e in self.events if isinstance(e, StepEvent)]


@contextlib.contextmanager
def exact_matmuls() -> Iterator[None]:
    """TF32 off while comparing logits across devices (training turns it on)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# ----- on a GPU ---------------------------------------------------------------------


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("model_type", ["lstm", "transformer"])
def test_bf16_training_on_cuda_lowers_the_loss(text_file: Path, model_type: str) -> None:
    model_config, config = tiny(model_type, device="cuda", precision="bf16", max_steps=60)
    recorder = Recorder()
    trainer = Trainer(load_corpus(str(text_file)), model_config, config, on_event=recorder)
    assert trainer.amp is torch.bfloat16
    assert trainer.optimizer.defaults["fused"] is True
    assert torch.backends.cuda.matmul.allow_tf32
    # Batches are drawn and gathered on the GPU, ids stored narrow.
    assert trainer.batches.index_device.type == "cuda"
    assert trainer.batches.device_ids is not None
    assert trainer.batches.device_ids.dtype == torch.uint8
    inputs, targets, _ = trainer.batches.next()
    assert inputs.device.type == targets.device.type == "cuda"
    result = trainer.run()
    losses = recorder.losses
    assert result.steps == 60
    assert all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.2


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("model_type", ["lstm", "transformer"])
def test_checkpoint_saved_on_cuda_loads_on_cpu_with_equal_logits(
    text_file: Path, tmp_path: Path, model_type: str
) -> None:
    model_config, config = tiny(model_type, device="cuda", max_steps=20)
    Trainer(load_corpus(str(text_file)), model_config, config, out_dir=tmp_path).run()
    on_gpu = load_checkpoint(tmp_path, "cuda")
    on_cpu = load_checkpoint(tmp_path, "cpu")
    tokens = torch.randint(
        0, len(on_cpu.vocab), (3, 24), generator=torch.Generator().manual_seed(0)
    )
    with exact_matmuls(), torch.inference_mode():
        gpu_logits = on_gpu.model(tokens.cuda())[0].cpu()
        cpu_logits = on_cpu.model(tokens)[0]
    torch.testing.assert_close(gpu_logits, cpu_logits, rtol=1e-4, atol=1e-4)


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("model_type", ["lstm", "gru", "rnn", "transformer"])
def test_incremental_decoding_on_cuda_matches_a_full_pass(model_type: str) -> None:
    model_settings, _ = preset(model_type, "tiny")
    torch.manual_seed(0)
    model = build_model(make_config(model_type, vocab_size=17, **model_settings)).cuda().eval()
    tokens = torch.randint(0, 17, (4, 24), device="cuda")
    with exact_matmuls(), torch.inference_mode():
        whole, _ = model(tokens)
        # A prompt in one call, then one character per call with the carried state.
        logits, state = model(tokens[:, :10])
        pieces = [logits]
        for t in range(10, tokens.shape[1]):
            logits, state = model(tokens[:, t : t + 1], state)
            pieces.append(logits)
    assert pieces[-1].device.type == "cuda"
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=1e-4, atol=1e-4)


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("model_type", ["lstm", "transformer"])
def test_generation_on_cuda(text_file: Path, tmp_path: Path, model_type: str) -> None:
    """Greedy text from a GPU equals the CPU's; streamed and batched sampling agree."""
    from engine.decoding.generator import Generator
    from engine.decoding.params import SamplingParams

    model_config, config = tiny(model_type, device="cuda", max_steps=60)
    Trainer(load_corpus(str(text_file)), model_config, config, out_dir=tmp_path).run()
    on_gpu, on_cpu = load_checkpoint(tmp_path, "cuda"), load_checkpoint(tmp_path, "cpu")
    greedy = SamplingParams(strategy="greedy", length=80)  # beyond the block size: it slides
    gpu = Generator(on_gpu.model, on_gpu.vocab, on_gpu.unigram, device="cuda")
    cpu = Generator(on_cpu.model, on_cpu.vocab, on_cpu.unigram, device="cpu")
    with exact_matmuls():
        assert gpu.generate("ab", greedy) == cpu.generate("ab", greedy)
        sampled = SamplingParams(length=60, seed=3, top_p=0.9)
        streamed = "".join(info.char for info in gpu.stream("a", sampled))
        assert gpu.generate("a", sampled) == [streamed]
        assert len(streamed) == 60


@needs_cuda
@pytest.mark.gpu
@pytest.mark.slow
def test_compile_on_cuda_trains_or_falls_back(text_file: Path) -> None:
    model_config, config = tiny("transformer", device="cuda", max_steps=20, compile=True)
    trainer = Trainer(load_corpus(str(text_file)), model_config, config)
    result = trainer.run()
    assert result.steps == 20
    assert math.isfinite(result.val_loss)


@needs_cuda
@pytest.mark.gpu
def test_wide_vocabulary_ids_live_on_the_gpu_as_int16(tmp_path: Path) -> None:
    text = "".join(chr(0x4E00 + i) for i in range(300)) * 40
    path = tmp_path / "wide.txt"
    path.write_text(text, encoding="utf-8")
    corpus = load_corpus(str(path))
    _, config = tiny("lstm", device="cuda")
    source = BatchSource(corpus.ids, config, torch.device("cuda"), 1, vocab_size=300)
    assert source.device_ids is not None and source.device_ids.dtype == torch.int16
    inputs, _, _ = source.next()
    assert inputs.dtype == torch.long and int(inputs.max()) < 300


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_ddp_on_two_gpus_with_nccl(text_file: Path, tmp_path: Path) -> None:
    import time

    from engine.training.launch import launch

    model_config, config = tiny("lstm", device="cuda", max_steps=None, final_eval=True)
    deadline = time.monotonic() + 60  # the ranks import torch first: give them time
    outcomes = launch(2, str(text_file), "utf-8", model_config, config, tmp_path, False, deadline)
    steps = [o.result.steps for o in outcomes]
    assert steps[0] == steps[1] > 0  # stopped together, on rank 0's clock
    assert outcomes[0].result.stopped_by == "time_budget"
    assert outcomes[0].result.device == "cuda:0" and outcomes[1].result.device == "cuda:1"
    assert math.isfinite(outcomes[0].result.val_loss)
    assert load_checkpoint(tmp_path, "cpu").meta["world_size"] == 2


# ----- on the CPU -------------------------------------------------------------------


class _BrokenCompiled(torch.nn.Module):
    """What torch.compile returns where it cannot work: it fails when first called."""

    def __init__(self, module: torch.nn.Module, fail_from_call: int = 1) -> None:
        super().__init__()
        self.module = module
        self.calls = 0
        self.fail_from_call = fail_from_call

    def forward(self, *args: object) -> object:
        self.calls += 1
        if self.calls >= self.fail_from_call:
            raise RuntimeError("InductorError: no working C++ compiler found\nmore detail")
        return self.module(*args)


def test_compile_failing_at_the_first_step_falls_back_to_eager(
    text_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch, "compile", lambda module, **_: _BrokenCompiled(module))
    model_config, config = tiny("lstm", device="cpu", max_steps=15, compile=True)
    recorder = Recorder()
    trainer = Trainer(load_corpus(str(text_file)), model_config, config, on_event=recorder)
    assert isinstance(trainer.compiled, _BrokenCompiled)
    result = trainer.run()
    assert result.steps == 15
    assert trainer.compiled is trainer.model and not trainer.config.compile
    notes = [e.message for e in recorder.events if isinstance(e, StatusEvent) and e.message]
    assert any("no working C++ compiler" in n and "eager" in n for n in notes)
    assert all(math.isfinite(x) for x in recorder.losses)


def test_compile_failing_when_called_falls_back_to_eager(
    text_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(module: torch.nn.Module, **_: object) -> torch.nn.Module:
        raise RuntimeError("Windows not yet supported for torch.compile")

    monkeypatch.setattr(torch, "compile", unavailable)
    model_config, config = tiny("lstm", device="cpu", max_steps=3, compile=True)
    trainer = Trainer(load_corpus(str(text_file)), model_config, config)
    assert trainer.compiled is trainer.model
    assert trainer.run().steps == 3


def test_an_error_after_compiled_steps_worked_is_not_swallowed(
    text_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        torch, "compile", lambda module, **_: _BrokenCompiled(module, fail_from_call=4)
    )
    model_config, config = tiny("lstm", device="cpu", max_steps=10, compile=True)
    trainer = Trainer(load_corpus(str(text_file)), model_config, config)
    with pytest.raises(RuntimeError, match="C\\+\\+ compiler"):
        trainer.run()
    assert trainer.step == 3


@pytest.mark.parametrize(
    ("vocab", "dtype"),
    [(2, torch.uint8), (256, torch.uint8), (257, torch.int16), (32768, torch.int16),
     (32769, torch.int32), (70000, torch.int32)],
)  # fmt: skip
def test_device_ids_use_the_narrowest_exact_dtype(vocab: int, dtype: torch.dtype) -> None:
    ids = np.array([0, vocab // 2, vocab - 1] * 5, dtype=np.uint32 if vocab > 65536 else np.uint16)
    assert _device_dtype(ids, vocab)[0] == dtype
    copied = _copy_to_device(ids, torch.device("cpu"), vocab)
    assert copied.dtype == dtype
    assert copied.long().tolist() == ids.astype(np.int64).tolist()
    assert _device_dtype(ids.astype(np.uint8), None)[0] == torch.uint8  # from the array's dtype


def test_generator_state_from_another_device_kind_reseeds_alike(text_file: Path) -> None:
    """A CUDA generator's state (16 bytes) cannot be set on a CPU generator: a GPU run
    resumed on a CPU reseeds from it, identically on every rank."""
    ids = load_corpus(str(text_file)).ids
    _, config = tiny("lstm", device="cpu")
    cpu = torch.device("cpu")
    foreign = torch.arange(16, dtype=torch.uint8)
    sources = [BatchSource(ids, config, cpu, 5) for _ in range(3)]
    for source in sources[:2]:
        source.restore(0, foreign)
    first, second, fresh = (s.next()[0] for s in sources)
    torch.testing.assert_close(first, second)
    assert not torch.equal(first, fresh)


@needs_no_cuda
@pytest.mark.parametrize("command", ["train", "eval"])
def test_device_cuda_without_cuda_is_a_one_line_exit_2(
    command: str, text_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from charlm_tui.cli import main

    args = {
        "train": ["train", "--corpus", str(text_file), "--out", str(tmp_path / "run")],
        "eval": ["eval", "--checkpoint", str(tmp_path), "--corpus", str(text_file)],
    }[command]
    monkeypatch.setattr(sys, "argv", ["charlm-tui", *args, "--device", "cuda", "--json"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "no CUDA GPU" in err and "Traceback" not in err
