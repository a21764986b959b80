"""Named starting points: model shape plus the training settings that suit it.

`tiny` trains in seconds (tests, demos); `notebook` is the course notebook's shape
(embed 64, 2x256 LSTM, dropout 0.2); `cpu` is the default on a CPU, tuned by
measurement on tinyshakespeare with a 120 s budget on 2 cores (bench/
train_quality.py); `gpu` is the default on CUDA.
"""

from __future__ import annotations

from engine.errors import ConfigError

PRESET_NAMES = ("tiny", "notebook", "cpu", "gpu")
# Old names still accepted, so scripts written for them keep working ("seed" read like a
# random seed; it is the seed notebook's model).
PRESET_ALIASES = {"seed": "notebook"}

# (model settings, training settings) per (model type, preset).
_RECURRENT = {
    "tiny": (
        {"embed_dim": 16, "hidden_size": 64, "num_layers": 1, "dropout": 0.0},
        {
            "batch_size": 16,
            "seq_len": 32,
            "lr": 1e-2,
            "warmup_steps": 10,
            "max_steps": 200,
            "eval_interval": 50,
            "eval_chars": 4096,
        },
    ),
    "notebook": (
        {"embed_dim": 64, "hidden_size": 256, "num_layers": 2, "dropout": 0.2},
        {"batch_size": 32, "seq_len": 64, "lr": 2e-3, "warmup_steps": 50, "max_steps": 5000},
    ),
    # 32 rows at lr 8e-3, not 64 at 4e-3: twice the updates for ~10% fewer chars/s. On
    # tinyshakespeare (2-core EPYC with AVX512-BF16), 120 s at 384 wide: 64 rows reached
    # 1.515-1.554; 32 rows 1.495 at 4e-3, 1.467 at 6e-3, 1.465 at 8e-3, 1.481 at 1.2e-2;
    # 16 rows 1.476-1.485. 600 s at 512 wide: 1.4387 before, 32 rows 1.4338 at 4e-3,
    # 1.4232 at 6e-3, 1.4096 at 8e-3. max_steps keeps the characters a step-bound run reads.
    "cpu": (
        {"embed_dim": 64, "hidden_size": 512, "num_layers": 1, "dropout": 0.0},
        {
            "batch_size": 32,
            "seq_len": 128,
            "lr": 8e-3,
            "warmup_steps": 30,
            "max_steps": 6000,
            "batching": "stateful",
        },
    ),
    "gpu": (
        {"embed_dim": 128, "hidden_size": 1024, "num_layers": 3, "dropout": 0.25},
        {"batch_size": 128, "seq_len": 256, "lr": 2e-3, "warmup_steps": 200, "max_steps": 5000},
    ),
}

_TRANSFORMER = {
    "tiny": (
        {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32, "dropout": 0.0},
        {
            "batch_size": 16,
            "seq_len": 32,
            "lr": 1e-2,
            "warmup_steps": 10,
            "max_steps": 200,
            "eval_interval": 50,
            "eval_chars": 4096,
        },
    ),
    "notebook": (
        {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0},
        {
            "batch_size": 12,
            "seq_len": 64,
            "lr": 1e-3,
            "warmup_steps": 100,
            "max_steps": 2000,
            "weight_decay": 0.1,
        },
    ),
    "cpu": (
        {"n_layer": 4, "n_head": 4, "n_embd": 192, "block_size": 128, "dropout": 0.0},
        {
            "batch_size": 32,
            "seq_len": 128,
            "lr": 2e-3,
            "warmup_steps": 50,
            "max_steps": 3000,
            "weight_decay": 0.1,
        },
    ),
    "gpu": (
        {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "dropout": 0.2},
        {
            "batch_size": 64,
            "seq_len": 256,
            "lr": 1e-3,
            "warmup_steps": 100,
            "max_steps": 5000,
            "weight_decay": 0.1,
            "beta2": 0.99,
        },
    ),
}

PRESETS: dict[str, dict[str, tuple[dict, dict]]] = {
    "lstm": _RECURRENT,
    "gru": _RECURRENT,
    "rnn": _RECURRENT,
    "transformer": _TRANSFORMER,
}


def default_preset(device_type: str) -> str:
    return "gpu" if device_type == "cuda" else "cpu"


def preset(model_type: str, name: str) -> tuple[dict, dict]:
    """Copies of the (model, training) settings of a preset."""
    if model_type not in PRESETS:
        raise ConfigError(f"unknown model '{model_type}': choose one of {', '.join(PRESETS)}")
    name = PRESET_ALIASES.get(name, name)
    if name not in PRESETS[model_type]:
        raise ConfigError(f"unknown preset '{name}': choose one of {', '.join(PRESET_NAMES)}")
    model, train = PRESETS[model_type][name]
    return dict(model), dict(train)
