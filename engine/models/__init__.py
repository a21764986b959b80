"""Model registry: build any architecture from its type name and config dict."""

from __future__ import annotations

import os
from dataclasses import fields

from engine.errors import ConfigError
from engine.models.base import CharLM, ModelConfig, State
from engine.models.gru import GRULM, GRUConfig
from engine.models.lstm import LSTMLM, LSTMConfig
from engine.models.rnn import RNNLM, RNNConfig
from engine.models.transformer import KVCache, TransformerConfig, TransformerLM
from engine.validation import check_bool, check_int, check_number

MODELS: dict[str, tuple[type[ModelConfig], type[CharLM]]] = {
    "lstm": (LSTMConfig, LSTMLM),
    "gru": (GRUConfig, GRULM),
    "rnn": (RNNConfig, RNNLM),
    "transformer": (TransformerConfig, TransformerLM),
}

MODEL_TYPES = tuple(MODELS)


def make_config(model_type: str, **values: object) -> ModelConfig:
    """A config for `model_type`; unknown fields and types are user errors."""
    if model_type not in MODELS:
        raise ConfigError(f"unknown model '{model_type}': choose one of {', '.join(MODEL_TYPES)}")
    config_class = MODELS[model_type][0]
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(values) - known - {"model_type"})
    if unknown:
        raise ConfigError(f"{model_type} has no setting {', '.join(unknown)}")
    config = config_class(**{k: v for k, v in values.items() if k in known})
    _check_ranges(config)
    return config


# Upper bounds on sizes (a tampered state.json or a typo in `--set` must not allocate
# terabytes): far above any model this tool trains on one machine.
MAX_SIZES = {
    "vocab_size": 0x110000,  # every Unicode code point
    "embed_dim": 65_536,
    "hidden_size": 65_536,
    "n_embd": 65_536,
    "num_layers": 1024,
    "n_layer": 1024,
    "n_head": 65_536,
    "block_size": 1 << 20,
}
MAX_PARAMETERS = 4 * 10**9
_GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def _check_ranges(config: ModelConfig) -> None:
    """Sizes are bounded integers and dropout a probability, or a ConfigError says so."""
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name in ("dropout", "weight_drop"):
            check_number(f.name, value, 0.0, 1.0, high_open=True)
        elif isinstance(f.default, bool):
            check_bool(f.name, value)
        elif isinstance(f.default, int):
            low = 0 if f.name in ("vocab_size", "num_labels") else 1
            check_int(f.name, value, low, MAX_SIZES.get(f.name))
    n_embd, n_head = getattr(config, "n_embd", None), getattr(config, "n_head", None)
    if n_embd is not None and n_head is not None and n_embd % n_head:
        raise ConfigError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head})")


def parameter_count(config: ModelConfig) -> int:
    """How many weights `build_model(config)` would allocate, computed without allocating."""
    vocab = max(int(config.vocab_size), 1)
    if config.model_type == "transformer":
        width, layers = config.n_embd, config.n_layer  # type: ignore[attr-defined]
        bias = bool(config.bias)  # type: ignore[attr-defined]
        per_layer = 12 * width * width + (13 if bias else 2) * width
        final_norm = (2 if bias else 1) * width
        # The output head shares the token embedding's weights.
        return (vocab + config.block_size) * width + layers * per_layer + final_norm  # type: ignore[attr-defined]
    embed, hidden = config.embed_dim, config.hidden_size  # type: ignore[attr-defined]
    gates = _GATES[config.model_type]
    first = gates * hidden * (embed + hidden + 2)
    rest = gates * hidden * (2 * hidden + 2) * (config.num_layers - 1)  # type: ignore[attr-defined]
    return vocab * embed + first + rest + hidden * vocab + vocab


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def check_fits(config: ModelConfig) -> int:
    """Refuse, before allocating, a model whose weights would not fit in memory.

    Training needs about four copies of the weights (weights, gradients, two Adam
    moments); a model whose fp32 weights alone exceed half the machine's memory is
    refused outright, whatever it is built for.
    """
    count = parameter_count(config)
    memory = _memory_bytes()
    too_big = count > MAX_PARAMETERS or (memory is not None and count * 4 > memory // 2)
    if too_big:
        gigabytes = count * 4 / 1e9
        raise ConfigError(
            f"a {config.model_type} of {count:,} parameters ({gigabytes:,.1f} GB of weights) "
            "does not fit in this machine's memory"
        )
    return count


def config_from_dict(data: dict) -> ModelConfig:
    values = dict(data)
    if values.get("num_labels") and "label_bias" not in values:
        values["label_bias"] = False  # saved before labels biased the logits: built as then
    return make_config(str(values.pop("model_type", "")), **values)


def build_model(config: ModelConfig) -> CharLM:
    check_fits(config)
    return MODELS[config.model_type][1](config)


__all__ = [
    "MODELS",
    "MODEL_TYPES",
    "CharLM",
    "KVCache",
    "ModelConfig",
    "State",
    "build_model",
    "check_fits",
    "config_from_dict",
    "make_config",
    "parameter_count",
]
