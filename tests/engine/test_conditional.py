"""Conditional models: the label embedding in every architecture, interpolation, guidance,
every decoding path honouring the condition, checkpoints, and a model that learns labels."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data.corpus import Vocab
from engine.decoding.condition_spec import parse_condition
from engine.decoding.conditioned import ConditionedLM, condition_mix
from engine.decoding.generator import Generator
from engine.decoding.params import SamplingParams
from engine.errors import ConfigError
from engine.runs.checkpoint import load_checkpoint, save_checkpoint
from tests.helpers import MODEL_TYPES, assert_one_line, tiny_model

VOCAB = Vocab(sorted(set("abcdefgh .\n")))


def conditional_model(kind: str, labels: int = 2, seed: int = 0):
    """A conditional model whose outputs really depend on context and label."""
    model = tiny_model(kind, vocab_size=len(VOCAB), seed=seed, num_labels=labels, dropout=0.0)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.5)
        for table in (model.label.table, model.label.bias):  # read through the label's gain
            table.weight /= model.label.gain
    return model.eval()


@pytest.mark.parametrize("kind", MODEL_TYPES)
def test_a_fresh_label_embedding_changes_nothing(kind: str) -> None:
    plain = tiny_model(kind, vocab_size=len(VOCAB), seed=1)
    labelled = tiny_model(kind, vocab_size=len(VOCAB), seed=2, num_labels=3)
    missing, unexpected = labelled.load_state_dict(plain.state_dict(), strict=False)
    # Only the label's own tables (its input vectors, its logit biases) and its gain.
    assert set(missing) == {"label.table.weight", "label.bias.weight", "label.gain"}
    assert not unexpected
    tokens = torch.randint(0, len(VOCAB), (2, 7))
    with torch.inference_mode():
        expected, _ = plain(tokens)
        for condition in (None, torch.tensor([1, 3])):
            got, _ = labelled(tokens, None, condition)
            torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("kind", MODEL_TYPES)
def test_step_by_step_equals_whole_with_a_condition(kind: str) -> None:
    model = conditional_model(kind)
    tokens = torch.randint(0, len(VOCAB), (3, 9))
    condition = torch.tensor([0, 1, 2])
    with torch.inference_mode():
        whole, _ = model(tokens, None, condition)
        state, steps = None, []
        for i in range(tokens.shape[1]):
            logits, state = model(tokens[:, i : i + 1], state, condition)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), whole, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(whole[0], whole[1])  # the label matters


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_a_mix_interpolates_the_label_embeddings(kind: str) -> None:
    model = conditional_model(kind)
    tokens = torch.randint(0, len(VOCAB), (1, 6))
    with torch.inference_mode():
        mixed, _ = model(tokens, None, torch.tensor([[0.0, 0.3, 0.7]]))
        for table in (model.label.table.weight, model.label.bias.weight):
            table[0] = 0.3 * table[1] + 0.7 * table[2]  # "no label" becomes the interpolation
        expected, _ = model(tokens)
    torch.testing.assert_close(mixed, expected)


@pytest.mark.parametrize("kind", MODEL_TYPES)
@pytest.mark.parametrize("mix", [[0.0, 0.25, 0.75], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
def test_guidance_is_the_label_mixture_plus_g_times_the_difference(kind: str, mix) -> None:
    """U + g * (C - U) in log probabilities, U the log of the mean of the model's
    distributions under each label on its own (engine/decoding/conditioned.py)."""
    model = conditional_model(kind)
    mix = torch.tensor(mix)
    tokens = torch.randint(0, len(VOCAB), (2, 5))
    with torch.inference_mode():
        conditional, _ = model(tokens, None, mix[None])
        per_label = [model(tokens, None, torch.tensor([k, k]))[0] for k in (1, 2)]
        guided, state = ConditionedLM(model, mix, 1.5)(tokens)
        plain, _ = ConditionedLM(model, mix, 1.0)(tokens)
    probs = torch.stack([torch.softmax(p, dim=-1) for p in per_label])
    mixture = probs.mean(0).log()
    expected = mixture + 1.5 * (torch.log_softmax(conditional, dim=-1) - mixture)
    torch.testing.assert_close(guided, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain, conditional)
    assert state[1] == 2  # the state holds every block of the batch


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_every_decoding_path_honours_condition_and_guidance(kind: str) -> None:
    model = conditional_model(kind, seed=3)
    greedy = SamplingParams(strategy="greedy", length=30)
    texts = {}
    for label in (1, 2):
        mix = torch.zeros(3)
        mix[label] = 1.0
        generator = Generator(ConditionedLM(model, mix, 2.0), VOCAB)
        streamed = "".join(t.char for t in generator.stream("ab", greedy))
        batched = generator.generate(["ab", "ab", "abc"], greedy)
        beam = generator.beam_search("ab", SamplingParams(strategy="beam", beam_width=1, length=30))
        assert batched[0] == batched[1] == streamed  # batched rows = the lone stream
        assert beam[0].text == streamed  # beam width 1 is greedy, guided rows reordered right
        texts[label] = streamed
    assert texts[1] != texts[2]


def test_parse_condition_normalises_and_rejects_bad_input() -> None:
    labels = ("code", "verse")
    assert parse_condition("verse", labels) == {"verse": 1.0}
    assert parse_condition("code=3,verse=1", labels) == {"code": 0.75, "verse": 0.25}
    assert condition_mix({"code": 0.75, "verse": 0.25}, labels).tolist() == [0.0, 0.75, 0.25]
    bad = {
        "shakespeare": "code, verse",
        "code=-1,verse=1": ">= 0",
        "code=nan,verse=1": ">= 0",
        "code=0,verse=0": "all zero",
        "code,verse": "weight",
        "code=x,verse=1": "not a number",
    }
    for spec, fragment in bad.items():
        with pytest.raises(ConfigError) as info:
            parse_condition(spec, labels)
        assert_one_line(info.value, fragment)
    with pytest.raises(ConfigError) as info:
        parse_condition("code", ())
    assert_one_line(info.value, "without labels")


def test_checkpoints_keep_label_names_and_old_ones_load_unconditional(tmp_path: Path) -> None:
    model = conditional_model("lstm")
    save_checkpoint(tmp_path / "new", model=model, vocab=VOCAB, meta={"labels": ["x", "y"]})
    loaded = load_checkpoint(tmp_path / "new")
    assert loaded.labels == ("x", "y") and loaded.model.num_labels == 2
    # A checkpoint from before labels: no num_labels in the config, no labels in the meta.
    plain = tiny_model("lstm", vocab_size=len(VOCAB))
    path = save_checkpoint(tmp_path / "old", model=plain, vocab=VOCAB, meta={})
    state = json.loads((path / "state.json").read_text())
    del state["model"]["num_labels"]
    state.pop("labels", None)
    (path / "state.json").write_text(json.dumps(state))
    old = load_checkpoint(tmp_path / "old")
    assert old.labels == () and old.model.num_labels == 0


def _coin_text(p_a: float, length: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    return "".join(np.where(rng.random(length) < p_a, "a", "b"))


def test_a_conditional_model_learns_to_tell_two_labels_apart(tmp_path: Path) -> None:
    """Label x: 'a' with p 0.9; label y: 'a' with p 0.1. With its label the model needs ~0.33
    nats/char; without one it must guess the label from a char or two of context, which
    costs clearly more (a Bayes-optimal guess costs ~0.11 nats/char more here)."""
    from engine.config.train import TrainConfig
    from engine.data.labels import load_labelled_corpus
    from engine.models import make_config
    from engine.training.trainer import Trainer

    (tmp_path / "x.txt").write_text(_coin_text(0.9, 6000, 1), encoding="utf-8")
    (tmp_path / "y.txt").write_text(_coin_text(0.1, 6000, 2), encoding="utf-8")
    corpus = load_labelled_corpus(str(tmp_path))
    config = TrainConfig(
        batch_size=32, seq_len=16, lr=1e-2, warmup_steps=5, max_steps=150, eval_interval=1000,
        conditional=True, label_dropout=0.2, final_eval=False, device="cpu",
    )  # fmt: skip
    model_config = make_config("gru", embed_dim=8, hidden_size=16, num_layers=1, dropout=0.0)
    trainer = Trainer(corpus, model_config, config)
    trainer.run()
    # Three-char held-out windows, each on its own: the label is what tells them apart.
    _, val = corpus.label_split(0.1)
    windows, conditions = [], []
    for start, end, label in val.segments.tolist():
        for s in range(start, end - 3, 3):
            windows.append(val.ids[s : s + 3])
            conditions.append(label + 1)
    tokens = torch.as_tensor(np.stack(windows).astype(np.int64))
    model = trainer.model.eval()

    def loss(condition: torch.Tensor | None) -> float:
        with torch.inference_mode():
            logits, _ = model(tokens[:, :-1], None, condition)
        return float(torch.nn.functional.cross_entropy(logits.transpose(1, 2), tokens[:, 1:]))

    true, none = loss(torch.tensor(conditions)), loss(None)
    entropy = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert true < entropy + 0.12, true
    # A model that ignored its label would score both the same (to float noise).
    assert none > true + 0.03, (true, none)


def test_a_conditional_run_resumes_only_as_conditional(tmp_path: Path) -> None:
    from engine.config.train import TrainConfig
    from engine.data.labels import load_labelled_corpus
    from engine.errors import CheckpointError
    from engine.models import make_config
    from engine.training.trainer import Trainer

    corpus_dir = tmp_path / "styles"
    corpus_dir.mkdir()
    (corpus_dir / "x.txt").write_text(_coin_text(0.9, 600, 1), encoding="utf-8")
    (corpus_dir / "y.txt").write_text(_coin_text(0.1, 600, 2), encoding="utf-8")
    corpus = load_labelled_corpus(str(corpus_dir))
    values = {"batch_size": 4, "seq_len": 8, "max_steps": 3, "eval_interval": 3,
              "eval_chars": 64, "final_eval": False, "device": "cpu"}  # fmt: skip
    model = make_config("rnn", embed_dim=4, hidden_size=8, num_layers=1)
    run = tmp_path / "run"
    Trainer(corpus, model, TrainConfig(conditional=True, **values), out_dir=run).run()
    assert load_checkpoint(run).labels == ("x", "y")
    with pytest.raises(CheckpointError) as info:
        Trainer(corpus, None, TrainConfig(**values), out_dir=run, resume=True)
    assert_one_line(info.value, "--conditional")
    more = {**values, "max_steps": 5}
    resumed = Trainer(corpus, None, TrainConfig(conditional=True, **more), out_dir=run, resume=True)
    assert resumed.step == 3 and resumed.model.num_labels == 2
