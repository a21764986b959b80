"""Model registry: build any architecture from its type name and config dict."""

from __future__ import annotations

import numbers
from dataclasses import fields

from engine.errors import ConfigError
from engine.models.base import CharLM, ModelConfig, State
from engine.models.gru import GRULM, GRUConfig
from engine.models.lstm import LSTMLM, LSTMConfig
from engine.models.rnn import RNNLM, RNNConfig
from engine.models.transformer import KVCache, TransformerConfig, TransformerLM

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


def _check_ranges(config: ModelConfig) -> None:
    """Sizes are positive integers and dropout a probability, or a ConfigError says so."""
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name == "dropout":
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ConfigError(f"dropout must be a number, got {value!r}")
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"dropout must be in [0, 1), got {value}")
        elif isinstance(f.default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{f.name} must be true or false, got {value!r}")
        elif isinstance(f.default, int):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ConfigError(f"{f.name} must be an integer, got {value!r}")
            if value < 1 and f.name != "vocab_size":
                raise ConfigError(f"{f.name} must be at least 1, got {value}")
    n_embd, n_head = getattr(config, "n_embd", None), getattr(config, "n_head", None)
    if n_embd is not None and n_head is not None and n_embd % n_head:
        raise ConfigError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head})")


def config_from_dict(data: dict) -> ModelConfig:
    values = dict(data)
    return make_config(str(values.pop("model_type", "")), **values)


def build_model(config: ModelConfig) -> CharLM:
    return MODELS[config.model_type][1](config)


__all__ = [
    "MODELS",
    "MODEL_TYPES",
    "CharLM",
    "KVCache",
    "ModelConfig",
    "State",
    "build_model",
    "config_from_dict",
    "make_config",
]
