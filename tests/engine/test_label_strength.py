"""A small label beside a big one is followed, and guidance moves samples towards the label
(engine/models/conditioning.py, engine/data/label_balance.py, engine/decoding/conditioned.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.decoding.conditioned import ConditionedLM, condition_mix
from engine.decoding.generator import Generator
from engine.decoding.params import SamplingParams
from tests.helpers import tiny_model


def _coin_text(p_a: float, length: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    return "".join(np.where(rng.random(length) < p_a, "a", "b"))


def _share_of_a(model, corpus, label: str, guidance: float) -> float:
    """'a' among 40 samples of 60 chars asked for `label`, each after the prompt 'a'."""
    mix = condition_mix({label: 1.0}, corpus.labels)
    generator = Generator(ConditionedLM(model, mix, guidance), corpus.vocab, corpus.unigram())
    samples = generator.generate("a", SamplingParams(length=60, seed=4, temperature=1.0), 40)
    text = "".join(samples)
    return text.count("a") / len(text)


def test_a_label_twelve_times_smaller_is_followed_and_guidance_helps(tmp_path: Path) -> None:
    """'big' (24,000 chars) is 'a' 90% of the time, 'small' (2,000) 10%. Asked for small
    after a prompt in big's style, the samples must be small's: about 10% 'a'. Before
    balanced sampling and the label's logit bias, 120 steps left them at 35-60% 'a'
    (seeds 1 and 2): the context, not the label, decided."""
    from engine.config.train import TrainConfig
    from engine.data.labels import load_labelled_corpus
    from engine.models import make_config
    from engine.training.trainer import Trainer

    (tmp_path / "big.txt").write_text(_coin_text(0.9, 24_000, 1), encoding="utf-8")
    (tmp_path / "small.txt").write_text(_coin_text(0.1, 2_000, 2), encoding="utf-8")
    corpus = load_labelled_corpus(str(tmp_path))
    config = TrainConfig(
        batch_size=32, seq_len=16, lr=1e-2, warmup_steps=5, max_steps=120, eval_interval=1000,
        conditional=True, label_dropout=0.1, final_eval=False, device="cpu", seed=1,
    )  # fmt: skip
    model_config = make_config("gru", embed_dim=8, hidden_size=16, num_layers=1, dropout=0.0)
    trainer = Trainer(corpus, model_config, config)
    trainer.run()
    model = trainer.model.eval()
    small = {g: _share_of_a(model, corpus, "small", g) for g in (1.0, 2.0)}
    big = {g: _share_of_a(model, corpus, "big", g) for g in (1.0, 2.0)}
    assert small[1.0] < 0.16, small  # small's 10%, not big's 90%
    assert big[1.0] > 0.8, big
    # Guidance moves each label's samples further from the other's, never back.
    assert small[2.0] <= small[1.0] and big[2.0] >= big[1.0] - 0.01, (small, big)


def test_runs_saved_before_the_logit_bias_load_and_resume_as_they_were() -> None:
    from engine.models import build_model, config_from_dict

    new = tiny_model("lstm", vocab_size=11, seed=0, num_labels=2)
    assert new.config.label_bias and new.label.bias is not None
    saved = new.config.as_dict()
    del saved["label_bias"]  # a model config saved before the bias existed
    old_config = config_from_dict(saved)
    assert old_config.label_bias is False
    with torch.no_grad():
        new.label.table.weight.normal_(0.0, 1.0)
    weights = {k: v for k, v in new.state_dict().items() if not k.startswith("label.")}
    weights["label.table.weight"] = new.label.table.weight
    loaded = build_model(old_config)
    loaded.load_state_dict(weights, strict=True)  # nothing missing, nothing left over
    assert loaded.label.bias is None and float(loaded.label.gain) == 1.0
    # The same parameters as then, in the same order: an old run's optimizer state fits.
    assert [n for n, _ in loaded.named_parameters()] == [
        n for n, _ in new.named_parameters() if n != "label.bias.weight"
    ]
    tokens = torch.randint(0, 11, (2, 6))
    condition = torch.tensor([1, 2])
    with torch.inference_mode():
        got, _ = loaded.eval()(tokens, None, condition)
        # The old formulation: the stored vector itself added to the input, no logit bias.
        x = loaded.embedding(tokens) + loaded.label.table(condition)[:, None]
        expected = loaded.head(loaded.rnn(x)[0])
    torch.testing.assert_close(got, expected)
