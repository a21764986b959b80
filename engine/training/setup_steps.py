"""How a Trainer gets ready: its run directory, a resumed state, the data, the model, the
optimizer, the precision and the compiled module.

A mixin of engine.training.trainer.Trainer, whose `__init__` calls these steps in
order; kept apart from the loop because they change for other reasons (new data
kinds, checkpoint formats, devices) than the training step does.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from engine.data.corpus import Corpus
from engine.data.items import item_window_starts, require_newline
from engine.errors import CheckpointError, ConfigError, first_line
from engine.models import CharLM, ModelConfig, build_model, check_fits, config_from_dict
from engine.training.batches import BatchSource
from engine.training.checkpoint import Checkpoint
from engine.training.evaluate import WindowSampler
from engine.training.events import StatusEvent
from engine.training.run_dir import RunClaim, check_room, claim_run_dir
from engine.training.run_state import load_resumable


class SetupSteps:
    """The named steps of Trainer.__init__ (they set the trainer's attributes)."""

    def _setup_run_dir(self, resume: bool, force: bool) -> RunClaim | None:
        """Claim the run directory (one writer at a time) before any work is done."""
        if resume and self.out_dir is None:
            raise ConfigError("--resume needs --out (the run directory to continue)")
        if self.out_dir is None or not self.is_main:
            return None
        if resume and not self.out_dir.is_dir():
            raise CheckpointError(f"nothing to resume in {self.out_dir}")
        return claim_run_dir(self.out_dir, resume=resume, force=force)

    def _setup_resume(self, resume: bool, force: bool) -> Checkpoint | None:
        """The checkpoint to continue from, checked against this corpus; None for a new run."""
        if not resume:
            return None
        assert self.out_dir is not None
        resumed, reasons = load_resumable(self.out_dir, self.device, self.corpus, force=force)
        saved_labels = list(resumed.meta.get("labels") or [])
        if saved_labels and not self.config.conditional:
            raise CheckpointError(
                f"{self.out_dir}: a conditional run ({', '.join(saved_labels)}): "
                "resume it with --conditional"
            )
        if self.config.conditional and saved_labels != list(self.corpus.labels):
            raise CheckpointError(
                f"{self.out_dir}: the checkpoint was trained on other labels "
                f"({', '.join(saved_labels) or 'none'}) than this corpus's"
            )
        if reasons:
            self._emit(StatusEvent("starting", f"resuming inexactly: {'; '.join(reasons)}"))
        return resumed

    def _setup_data(self) -> None:
        """The train/validation split, the batch source and the evaluation windows."""
        config, corpus = self.config, self.corpus
        corpus.require_length(config.seq_len, config.val_fraction)
        self.train_segments = self.val_segments = None
        if config.conditional:
            self._setup_labels(corpus)
        else:
            self.train_ids, self.val_ids = corpus.split(config.val_fraction)
        self.batches = BatchSource(
            self.train_ids,
            config,
            self.device,
            config.seed * 1000,
            rank=self.rank,
            world_size=self.world_size,
            vocab_size=len(corpus.vocab),
            item_starts=self._item_starts(),
            segments=self.train_segments,
            label_dropout=config.label_dropout,
        )
        self.eval_windows = WindowSampler(
            self.val_ids,
            min(config.eval_chars, max(len(self.val_ids) - 1, 1)),
            min(config.seq_len, len(self.val_ids) - 1),
            config.seed + 7,
            self.device,
            segments=self.val_segments,
        )

    def _setup_model(self, model_config: ModelConfig | None, resumed: Checkpoint | None) -> None:
        """Build the model (the checkpoint's config and weights when resuming)."""
        config = self.config
        if resumed is not None:
            model_config = config_from_dict(resumed.meta["model"])
        if model_config is None:
            raise ConfigError("a model configuration is required")
        model_config.vocab_size = len(self.corpus.vocab)
        if self.train_segments is not None:
            if model_config.num_labels not in (0, len(self.corpus.labels)):
                raise CheckpointError("the checkpoint was trained on another number of labels")
            model_config.num_labels = len(self.corpus.labels)
        self.model_config = model_config
        block_size = getattr(model_config, "block_size", None)
        if model_config.model_type == "transformer" and config.seq_len > block_size:
            raise ConfigError(
                f"seq-len {config.seq_len} exceeds the transformer's block size {block_size}"
            )
        short_window = model_config.model_type == "transformer" and config.seq_len < block_size
        if short_window and resumed is None:  # a resumed run keeps the context it has
            # Positions past the training window would never be trained, yet decoding and
            # the whole-split evaluation read up to block_size of context: the model's
            # context is the window it learns on.
            model_config.block_size = config.seq_len
            self.setup_notes.append(
                f"transformer context set to the training window: block size "
                f"{config.seq_len} (was {block_size}; longer contexts would never be trained)"
            )
        if config.batching == "stateful" and model_config.model_type == "transformer":
            raise ConfigError("stateful batching is for recurrent models; use random")
        if resumed is None and config.fit_width:
            self._fit_width(model_config)
        parameters = check_fits(model_config)  # before allocating anything
        if self._claim is not None:
            # weights + two Adam moments, written beside the previous checkpoint
            check_room(self._claim.run_dir, parameters * 4 * 3)
        # Every rank builds the same initial weights (DDP also broadcasts rank 0's); the
        # randomness after that (dropout) differs per rank.
        torch.manual_seed(config.seed)
        self.model: CharLM = build_model(model_config).to(self.device)
        if self.rank:
            torch.manual_seed(config.seed + self.rank)
        if resumed is not None:
            self.model.load_state_dict(resumed.model.state_dict())

    def _fit_width(self, model_config: ModelConfig) -> None:
        """Narrow a budgeted recurrent run to what the budget can train here and what the
        corpus can teach it, and (with `fit_data`) raise its dropout and weight decay with
        the epochs it will read (engine/training/sizing.py). Single-process CPU runs only:
        DDP ranks must agree on the shape, and a GPU trains the preset's width in any
        budget worth having."""
        from engine.models.recurrent import RecurrentConfig
        from engine.training.precision import CpuFacts
        from engine.training.sizing import (
            TRAIN_SHARE,
            fit_to_data,
            fit_width,
            measure_training_rate,
        )

        cfg = self.config
        solo_cpu = self.world_size == 1 and self.device.type == "cpu"
        if not (solo_cpu and isinstance(model_config, RecurrentConfig) and self.deadline):
            return
        bf16 = cfg.precision == "bf16" or (
            cfg.precision == "auto" and CpuFacts.here().bf16 is not None
        )
        # On a busy machine, probe on the cores training will start on: threads beyond
        # the idle cores would make every width look slow, and the probe itself long.
        self.threads.start()
        seconds = max(self.deadline - time.monotonic(), 0.0) * TRAIN_SHARE
        preset_width = model_config.hidden_size
        train_chars = len(self.train_ids)
        choice = fit_width(
            model_config,
            seconds,
            lambda shaped: measure_training_rate(shaped, cfg.batch_size, self.device, bf16),
            train_chars if cfg.fit_data else None,
        )
        model_config.hidden_size = choice.width
        self.width_choice = choice
        self.setup_notes.append(choice.note(preset_width))
        if cfg.fit_data:
            rate, estimated = choice.rate(self.device.type)
            steps = cfg.max_steps
            data = fit_to_data(
                train_chars,
                seconds,
                rate,
                steps * cfg.batch_size * cfg.seq_len if steps is not None else None,
                estimated=estimated,
            )
            model_config.dropout = max(model_config.dropout, data.dropout)
            cfg.weight_decay = max(cfg.weight_decay, data.weight_decay)
            self.setup_notes.append(data.reason(model_config.dropout, cfg.weight_decay))

    def _setup_optimizer(self) -> None:
        self.optimizer = self._make_optimizer()

    def _item_starts(self) -> np.ndarray | None:
        """With --items: the newlines training windows start at (see engine.data.items)."""
        if not self.config.items:
            return None
        require_newline(self.corpus.vocab.chars, self.corpus.name)
        newline = self.corpus.vocab.index["\n"]
        return item_window_starts(self.train_ids, newline, self.config.seq_len)

    def _setup_labels(self, corpus: Corpus) -> None:
        """A conditional run: splits and windows kept per label (the model gets one
        embedding per label in _setup_model)."""
        from engine.data.labels import require_label_length

        if corpus.segments is None:
            raise ConfigError(
                f"--conditional needs a labelled corpus ('{corpus.name}' has no labels): "
                "a directory with one entry per label, or label<TAB>text lines"
            )
        require_label_length(corpus, self.config.seq_len, self.config.val_fraction)
        train, val = corpus.label_split(self.config.val_fraction)
        self.train_ids, self.train_segments = train.ids, train.segments
        self.val_ids, self.val_segments = val.ids, val.segments
        if self.rank == 0:
            from engine.data.label_balance import balance_note

            spans = train.segments[:, 1] - train.segments[:, 0] - self.config.seq_len
            windows = np.maximum(spans, 0)
            sizes = np.bincount(train.segments[:, 2], weights=windows, minlength=len(corpus.labels))
            self.setup_notes.append(balance_note(corpus.labels, sizes, self.config.label_balance))

    def _make_optimizer(self) -> torch.optim.Optimizer:
        decay, no_decay = [], []
        for param in self.model.parameters():
            (decay if param.dim() >= 2 else no_decay).append(param)
        groups = [
            {"params": decay, "weight_decay": self.config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        betas = (0.9, self.config.beta2)
        if self.device.type == "cuda":
            return torch.optim.AdamW(groups, lr=self.config.lr, betas=betas, fused=True)
        # torch.optim imports torch._dynamo (seconds of a time budget); this one does not.
        from engine.training.optim import AdamW

        return AdamW(groups, lr=self.config.lr, betas=betas)  # type: ignore[return-value]

    def _choose_precision(self) -> None:
        """fp32 or bf16 autocast, by measurement where the CPU could go either way."""
        from engine.training.precision import choose_precision, probe_step_seconds

        cfg = self.config
        shape = {"model": self.model_config.as_dict(), "batch": [cfg.batch_size, cfg.seq_len]}
        self.precision = choose_precision(
            cfg.precision,
            self.device,
            shape=shape,
            # Under DDP the ranks must agree, so only a cached verdict is used there.
            probe=None
            if self.world_size > 1
            else lambda: probe_step_seconds(
                self.model, cfg.batch_size, cfg.seq_len, len(self.corpus.vocab), self.device
            ),
        )
        self.amp = self.precision.dtype

    def _training_module(self) -> torch.nn.Module:
        """What a training step calls: the model, wrapped in DDP when there are several ranks."""
        if self.world_size > 1:
            from engine.training.ddp import wrap_ddp

            return wrap_ddp(self.model, self.device)
        return self.model

    def _maybe_compile(self) -> torch.nn.Module:
        if not self.config.compile:
            return self.eager
        try:
            return torch.compile(self.eager)  # type: ignore[return-value]
        except Exception as exc:
            self._fall_back_to_eager(exc)
            return self.eager

    def _fall_back_to_eager(self, exc: BaseException) -> None:
        first = first_line(exc, type(exc).__name__)[:200]
        self._emit(StatusEvent("training", f"torch.compile unavailable ({first}); eager mode"))
        self.config.compile = False
        self.compiled = self.eager

    def _compile_failed(self, exc: BaseException) -> bool:
        """Did this exception come from torch.compile, which compiles lazily at first call?

        Anything raised by a compiled step before one has succeeded counts (a missing
        C compiler, an unsupported op), and later only dynamo / inductor errors (a
        recompilation for new shapes).
        """
        if self.compiled is self.eager:
            return False
        if not self._compiled_ok:
            return True
        return type(exc).__module__.startswith(("torch._dynamo", "torch._inductor"))

    # ----- control ------------------------------------------------------------------
