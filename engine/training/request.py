"""One training request resolved into the config that is trained and saved, with reasons.

The CLI (`train`, `lr-find`) and the engine worker (the app's training form) both
call `resolve_training`, so the same request trains the same model everywhere.
It reads, in order: the run being resumed (its own settings are the base, and
what cannot change is refused) or the preset; the settings asked for; the
policy that follows from them (items and conditional runs batch at random; the
`cpu` preset's width follows the budget; the regularisation follows the epochs
the run will read of this corpus: engine/config/sizing.py); and then checks
everything against the corpus and the machine. Every refusal is a one-line
ConfigError raised here, before a run directory is touched; every adjustment is
a line of `reasons`, said at the start of the run.

`asked` names the settings the user chose (the CLI's `--set` and flags; in the
app, the form's fields that differ from the preset): only those are kept from
policy (an asked width is not fitted, an asked dropout not raised).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from engine.config.presets import default_preset, preset
from engine.config.train import REGULARISATION, TrainConfig
from engine.data.corpus import Corpus
from engine.errors import CheckpointError, ConfigError
from engine.files import user_path
from engine.models import MODEL_TYPES, MODELS, ModelConfig, check_fits, make_config

# Settings the run decides (never asked for): from its corpus, or from what was asked.
FROM_CORPUS = {
    "vocab_size": "the vocabulary comes from the corpus",
    "num_labels": "num_labels comes from the corpus's labels (train with --conditional)",
    "asked_regularisation": "it records which of dropout, weight_decay and weight_drop "
    "were set: set those instead",
}
# Training settings a resumed run keeps: they decide its tokens or its held-out split.
KEPT_ON_RESUME = ("tokens", "word_vocab", "conditional", "val_fraction")
# Settings of the machine, not of the run: a resume may change them without a word.
MACHINE = ("device", "precision", "compile", "threads")


@dataclass
class TrainRequest:
    model_type: str | None = None  # None: lstm, or the resumed run's
    preset: str | None = None  # None: the device's default
    settings: dict = field(default_factory=dict)  # model and training settings, flat
    asked: frozenset[str] | None = None  # None: every key of `settings`
    resume: dict | None = None  # the resumed checkpoint's state ({"model", "train", ...})
    out_dir: str | None = None  # checked when given (train); None for lr-find and the app

    def chosen(self) -> frozenset[str]:
        return frozenset(self.settings) if self.asked is None else self.asked


@dataclass
class Resolution:
    model_config: ModelConfig
    config: TrainConfig
    preset: str | None  # None for a resumed run (its own settings)
    reasons: list[str] = field(default_factory=list)


def check_out_dir(out: str) -> Path:
    """A run directory path, refusing the empty path (the current directory) and a root."""
    if not out.strip():
        raise ConfigError("--out is empty: name a run directory")
    if "\n" in out or "\r" in out:
        raise ConfigError("--out must not contain a line break")
    path = user_path(out)
    if path.resolve() == Path(path.resolve().anchor):
        raise ConfigError(f"--out {out} is a filesystem root: name a run directory inside it")
    return path


def saved_run_state(out_dir: Path) -> dict:
    """The state of the run in `out_dir` a resume continues (its `last` checkpoint)."""
    from engine.runs.checkpoint import read_state, resolve_checkpoint_dir

    if not out_dir.is_dir():
        raise CheckpointError(f"nothing to resume in {out_dir}")
    try:
        state = read_state(resolve_checkpoint_dir(out_dir, "last"))
    except CheckpointError:
        if not any(out_dir.glob("step-*")) and not (out_dir / "last").exists():
            raise CheckpointError(f"nothing to resume in {out_dir}") from None
        raise
    if not isinstance(state.get("model"), dict) or not isinstance(state.get("train"), dict):
        raise CheckpointError(f"{out_dir}: the checkpoint's state.json has no model or settings")
    return state


def resolve_training(request: TrainRequest, corpus: Corpus) -> Resolution:
    """The model config and training config `request` trains on `corpus`, and why."""
    from engine.device import resolve_device

    if request.out_dir is not None:
        check_out_dir(request.out_dir)
    reasons: list[str] = []
    if request.resume is not None:
        model_type, model, train = _resumed_base(request, reasons)
        preset_name = None
    else:
        model_type = request.model_type or "lstm"
        if model_type not in MODEL_TYPES:
            raise ConfigError(
                f"unknown model '{model_type}': choose one of {', '.join(MODEL_TYPES)}"
            )
        device = resolve_device(str(request.settings.get("device", "auto")))
        preset_name = request.preset or default_preset(device.type)
        model, train = preset(model_type, preset_name)
        asked_model, asked_train = split_settings(model_type, request.settings)
        model.update(asked_model)
        train.update(asked_train)
    config = TrainConfig.from_dict(train)
    _policy(request, model_type, preset_name, config, corpus, reasons)
    config.validate()
    if request.resume is None:  # after validate: the sizes are numbers in their bounds
        _fit_small_corpus(request.chosen(), config, corpus, reasons)
    device = resolve_device(config.device)  # cuda without CUDA fails here, before any file
    model_config = make_config(model_type, **model)
    _check_corpus(config, model_config, corpus)
    if request.resume is None:
        _fit_to_data(request, config, model_config, corpus, device.type, reasons)
    return Resolution(model_config, config, preset_name, reasons)


def split_settings(model_type: str, settings: dict) -> tuple[dict, dict]:
    """Flat settings split into (model, training); an unknown name is a ConfigError."""
    model_fields = {f.name for f in fields(MODELS[model_type][0])}
    train_fields = {f.name for f in fields(TrainConfig)}
    model, train = {}, {}
    for key, value in settings.items():
        if key in FROM_CORPUS:
            raise ConfigError(f"cannot set {key}: {FROM_CORPUS[key]}")
        if key in model_fields:
            model[key] = value
        elif key in train_fields:
            train[key] = value
        else:
            raise ConfigError(f"unknown setting '{key}' for a {model_type} model or its training")
    return model, train


def _resumed_base(request: TrainRequest, reasons: list[str]) -> tuple[str, dict, dict]:
    """A resume starts from the run's own settings: what cannot change is refused, what
    changes is said in one line."""
    assert request.resume is not None
    saved_model = dict(request.resume["model"])
    model_type = str(saved_model.pop("model_type", ""))
    if model_type not in MODEL_TYPES:
        raise CheckpointError(f"the checkpoint's model type '{model_type}' is unknown")
    if request.model_type is not None and request.model_type != model_type:
        raise ConfigError(
            f"--resume continues a {model_type} run: its model cannot become "
            f"{request.model_type} (start a new run in another --out)"
        )
    asked_model, asked_train = split_settings(model_type, request.settings)
    chosen = request.chosen()
    for key, value in asked_model.items():
        if key in chosen and saved_model.get(key) != value:
            raise ConfigError(
                f"--resume cannot change the architecture: {key} is {saved_model.get(key)} "
                f"in this run, not {value} (start a new run in another --out)"
            )
    saved_train = TrainConfig.from_dict(request.resume["train"])
    train = asdict(saved_train)
    for key in KEPT_ON_RESUME:
        if key in chosen and key in asked_train and asked_train[key] != train[key]:
            raise ConfigError(
                f"--resume cannot change {key} ({train[key]} in this run, asked {asked_train[key]}):"
                " it decides the tokens or the held-out split (start a new run in another --out)"
            )
    changes = []
    for key, value in asked_train.items():
        if value != train.get(key):
            if key not in MACHINE:
                changes.append(f"{key} {_show(train.get(key))} -> {_show(value)}")
            train[key] = value
    train["fit_width"] = train["fit_data"] = False  # the run keeps the shape it has
    given = f" (--preset {request.preset} not applied)" if request.preset else ""
    said = "; changed: " + ", ".join(changes) if changes else "; nothing changed"
    reasons.append(f"resuming with the run's own model and settings{given}{said}")
    return model_type, saved_model, train


def _show(value: object) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _policy(
    request: TrainRequest,
    model_type: str,
    preset_name: str | None,
    config: TrainConfig,
    corpus: Corpus,
    reasons: list[str],
) -> None:
    """What follows from the settings: batching, items, and which fitting may run."""
    from engine.data.items import corpus_is_items

    chosen = request.chosen()
    if config.conditional and "batching" not in chosen and config.batching != "random":
        config.batching = "random"  # a preset's stateful streams would run across labels
    if request.resume is None:
        if "items" not in chosen and not config.conditional:
            config.items = corpus_is_items(corpus.vocab.chars, corpus.ids)
            if config.items:
                reasons.append(
                    "line-per-item corpus detected: windows start at items (--no-items: off)"
                )
        if config.items and config.batching != "random":
            reasons.append("items train on windows that start at items: random batching")
            config.batching = "random"
    if request.resume is not None:
        return
    if "fit_width" not in chosen:
        config.fit_width = (
            preset_name == "cpu"
            and config.time_budget is not None
            and model_type != "transformer"
            and config.tokens == "char"
            and "hidden_size" not in chosen
        )
    if "fit_data" not in chosen:
        config.fit_data = True
    config.asked_regularisation = tuple(key for key in REGULARISATION if key in chosen)


# The shortest training window a small corpus is shrunk to (shorter, nothing is learnt).
MIN_WINDOW = 8


def _fit_small_corpus(
    chosen: frozenset[str], config: TrainConfig, corpus: Corpus, reasons: list[str]
) -> None:
    """A corpus too small for the preset's windows trains on shorter ones (and at random
    where its streams could not hold a window each), saying so; what was asked is kept
    and refused below if it does not fit. A labelled corpus is not shrunk: one tiny label
    would shorten every label's windows (require_label_length says what to do)."""
    if config.conditional or config.tokens != "char":
        return
    train, val = corpus.split(config.val_fraction)
    shortest = min(len(train), len(val))
    if "seq_len" not in chosen and config.seq_len + 1 > shortest >= MIN_WINDOW + 1:
        reasons.append(
            f"seq_len {config.seq_len} -> {shortest - 1}: a {len(corpus):,}-char corpus "
            f"holds a {shortest:,}-char split (more text would train a better model)"
        )
        config.seq_len = shortest - 1
    streams = len(train) // (config.seq_len + 1)
    if "batching" not in chosen and config.batching == "stateful" and streams < config.batch_size:
        reasons.append(
            f"random batching: {len(train):,} training chars cannot hold "
            f"{config.batch_size} streams of {config.seq_len + 1}"
        )
        config.batching = "random"


def _check_corpus(config: TrainConfig, model_config: ModelConfig, corpus: Corpus) -> None:
    """Everything the trainer would refuse after claiming the run directory, refused now."""
    from engine.data.items import require_newline

    if config.conditional:
        from engine.data.labels import require_label_length

        if corpus.segments is None:
            raise ConfigError(
                f"--conditional needs a labelled corpus ('{corpus.name}' has no labels): "
                "a directory with one entry per label, or label<TAB>text lines"
            )
        require_label_length(corpus, config.seq_len, config.val_fraction)
        model_config.num_labels = len(corpus.labels)
    else:
        corpus.require_length(config.seq_len, config.val_fraction)
    if config.items:
        require_newline(corpus.vocab.chars, corpus.name)
    block_size = getattr(model_config, "block_size", None)
    if block_size is not None and config.seq_len > block_size:
        raise ConfigError(
            f"seq-len {config.seq_len} exceeds the transformer's block size {block_size}"
        )
    if config.batching == "stateful" and model_config.model_type == "transformer":
        raise ConfigError("stateful batching is for recurrent models; use random")
    extra = config.word_vocab if config.tokens == "word" else 0
    model_config.vocab_size = len(corpus.vocab) + extra
    check_fits(model_config)


def _fit_to_data(
    request: TrainRequest,
    config: TrainConfig,
    model_config: ModelConfig,
    corpus: Corpus,
    device_type: str,
    reasons: list[str],
) -> None:
    """Dropout, weight decay and weight drop from the epochs the run will read (engine/training/
    sizing.py). A run whose width is fitted decides at the start, from measured speed."""
    from engine.config.sizing import chars_by_steps, estimated_rate, fit_to_data
    from engine.models import parameter_count

    if config.fit_width or not config.fit_data:
        if config.fit_width:
            reasons.append(
                f"width and regularisation: fitted at the start to the "
                f"{config.time_budget:g} s budget and {len(corpus):,} chars"
            )
        return
    train_chars = max(round(len(corpus) * (1 - config.val_fraction)), 1)
    rate = None
    if config.time_budget is not None:
        rate = estimated_rate(parameter_count(model_config), device_type)
    fit = fit_to_data(
        train_chars, config.time_budget, rate, chars_by_steps(config), estimated=rate is not None
    )
    reasons.append(fit.apply(model_config, config))


def form_request(
    model_type: str, preset_name: str, model: dict, train: dict, resume: dict | None = None
) -> TrainRequest:
    """The app's training form as a request: the form shows every setting, so only the
    fields that differ from the preset (or, resuming, from the run) count as asked for;
    the "one item per line" box is always the user's answer. Resuming, the form's preset
    is not asked for (the run keeps its own settings), so nothing says it was not applied."""
    settings = {**model, **train}
    if resume is not None:
        settings.pop("block_size", None)  # the form derives it from the preset's
        base = {**resume["train"], **resume["model"]}
    else:
        preset_model, preset_train = preset(model_type, preset_name)
        base = {**asdict(TrainConfig()), **preset_train, **preset_model}
    asked = {key for key, value in settings.items() if key not in base or base[key] != value}
    if "items" in settings:
        asked.add("items")
    chosen_preset = None if resume is not None else preset_name
    return TrainRequest(model_type, chosen_preset, settings, frozenset(asked), resume)
