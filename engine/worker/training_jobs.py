"""The engine's training and checkpoint commands (a mixin of EngineServer)."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import ConfigError, UserError
from engine.files import user_path
from engine.worker import protocol as p
from engine.worker.jobs import Job
from engine.worker.runs import list_runs, log_exception, new_run_dir

if TYPE_CHECKING:  # pragma: no cover
    from engine.data.corpus import Corpus
    from engine.training.trainer import Trainer


class TrainingHandlers:
    """Train, pause, resume, stop, save, load and list runs."""

    def on_Train(self, cmd: p.Train) -> None:
        from engine.training.request import form_request, resolve_training

        if self.training:
            raise UserError("training is already running: stop it first")
        corpus = self.corpus
        if corpus is None:
            raise UserError("no corpus loaded yet: pick one in the Corpus tab first")
        saved = None
        if cmd.resume:
            if self.loaded is None:
                raise UserError("nothing to continue: load a checkpoint first")
            saved = {
                "model": self.loaded.model.config.as_dict(),
                "train": self.loaded.meta.get("train") or {},
            }
        if cmd.train.get("conditional") or (saved and saved["train"].get("conditional")):
            if self.labelled is None:
                raise UserError(f"'{corpus.name}' has no labels to train a conditional model on")
            corpus = self.labelled
        # The same resolution as `charlm-tui train` (engine/training/request.py): every
        # refusal before a run directory exists, and the reasons said at the start.
        request = form_request(cmd.model_type, cmd.preset, cmd.model, cmd.train, saved)
        resolution = resolve_training(request, corpus)
        config, model_config = resolution.config, resolution.model_config
        if cmd.resume:
            out_dir = self._run_dir_of(self.loaded.path)
            from engine.data.words import char_vocab

            if char_vocab(self.loaded.vocab) != corpus.vocab:
                raise UserError(
                    f"the checkpoint was trained on another vocabulary than '{corpus.name}': "
                    "load its corpus first"
                )
            model_config = None  # the checkpoint's own
        else:
            out_dir = new_run_dir(corpus.name, cmd.model_type)
        self.train_stop.clear()
        self.trainer_paused.clear()
        self.train_over.clear()
        self.train_thread = threading.Thread(
            target=self._train,
            args=(cmd, corpus, model_config, config, out_dir, resolution.reasons),
            name="train",
            daemon=True,
        )
        self.train_thread.start()

    def _train(
        self, cmd: p.Train, corpus: Corpus, model_config, config, out_dir: Path, reasons: list
    ) -> None:
        board = None

        def run() -> None:
            nonlocal board
            from engine.training.trainer import Trainer

            self.out.send(p.StatusEvent("starting", "building the model"))
            if cmd.tensorboard_dir:
                from engine.decoding.preview import preview_text
                from engine.runs.tensorboard_log import TensorBoardLog

                board = TensorBoardLog(
                    Path(out_dir) / cmd.tensorboard_dir,  # an absolute path stays as it is
                    sampler=lambda: preview_text(trainer, 200),
                )

            def on_event(event: object) -> None:
                self._on_train_event(event, cmd)
                if board is not None:
                    board.record(event)

            trainer = Trainer(
                corpus,
                model_config,
                config,
                out_dir=out_dir,
                on_event=on_event,
                resume=cmd.resume,
            )
            if cmd.resume and config.max_steps is not None and trainer.step >= config.max_steps:
                raise ConfigError(
                    f"the checkpoint is already at step {trainer.step}: "
                    f"raise max steps above it to continue"
                )
            with self.lock:
                self.trainer = trainer
                self.current = "trainer"
                self.last_saved = None
            self.out.send(
                p.TrainStarted(
                    run_dir=str(out_dir),
                    corpus=corpus.name,
                    model_type=trainer.model_config.model_type,
                    preset=cmd.preset,
                    model=trainer.model_config.as_dict(),
                    train=asdict(config),
                    parameters=trainer.model.num_parameters(),
                    device=str(trainer.device),
                    step=trainer.step,
                    history=list(trainer.history),
                    metrics=self._metrics_of(out_dir, trainer.step) if cmd.resume else [],
                    labels=list(corpus.labels) if config.conditional else [],
                    reasons=[*reasons, *trainer.setup_notes],
                )
            )
            if self.train_stop.is_set():
                trainer.stop()
            self._last_sample_at = time.monotonic()
            result = trainer.run()
            self._train_sample(trainer, cmd.sample_chars)
            if board is not None:  # closed before the UI hears training is over
                board.close()
                board = None
            self._end_training()
            self.out.send(p.TrainFinished(result.as_dict()))

        finished = False

        def guarded_run() -> None:
            nonlocal finished
            run()
            finished = True

        try:
            self._guarded("Train", 0, guarded_run)
        finally:
            if board is not None:
                board.close()
            if not finished:
                self._end_training()
                self.out.send(p.StatusEvent("failed", "training failed"))

    def _end_training(self) -> None:
        """Training is over for every command from now on (sent before its last event)."""
        self.trainer_paused.clear()
        self.train_over.set()

    def _on_train_event(self, event: object, cmd: p.Train) -> None:
        if isinstance(event, p.StepEvent):
            self.out.latest("step", event)
            now = time.monotonic()
            if (
                cmd.sample_every_s > 0
                and now - self._last_sample_at >= cmd.sample_every_s
                and not self._sampling_now.is_set()
            ):
                self._last_sample_at = now
                trainer = self.trainer
                if trainer is not None:
                    self._sampling_now.set()
                    threading.Thread(
                        target=self._train_sample,
                        args=(trainer, cmd.sample_chars),
                        name="train-sample",
                        daemon=True,
                    ).start()
            return
        if isinstance(event, p.StatusEvent):
            if event.state == "paused":
                self.trainer_paused.set()
            elif event.state == "training":
                self.trainer_paused.clear()
        if isinstance(event, p.CheckpointEvent):
            self.last_saved = (event.step, event.path)
        self.out.send(event)

    def _train_sample(self, trainer: Trainer, chars: int) -> None:
        """What the model writes now: a short sample at temperature 0.8 from the latest weights."""
        try:
            from engine.decoding.preview import preview_text

            step = trainer.step
            self.out.send(p.TrainSample(step, preview_text(trainer, chars)))
        except Exception:
            log_exception("train sample")
        finally:
            self._sampling_now.clear()

    @staticmethod
    def _metrics_of(run_dir: Path, up_to_step: int) -> list[dict]:
        """The run's metrics.jsonl up to a checkpoint's step, thinned for the UI's plots.

        The plots are a nicety: a metrics file that cannot be read (a pipe, a link to a
        device, a huge file) leaves them empty instead of refusing a loadable model.
        """
        from engine.runs.listing import run_history, thin

        try:
            history = run_history(Path(run_dir))
        except UserError as exc:
            log_exception(f"metrics of {run_dir} not shown: {exc}")
            return []
        return thin([r for r in history if r["step"] <= up_to_step])

    def _require_training(self) -> Trainer:
        if not self.training or self.trainer is None:
            raise UserError("nothing is training")
        return self.trainer

    def on_Pause(self, cmd: p.Pause) -> None:
        self._require_training().pause()

    def on_Resume(self, cmd: p.Resume) -> None:
        self._require_training().resume()

    def on_Stop(self, cmd: p.Stop) -> None:
        if not self.training:
            raise UserError("nothing is training")
        self.train_stop.set()
        if self.trainer is not None:
            self.trainer.stop()

    # ----- checkpoints -------------------------------------------------------------

    @staticmethod
    def _run_dir_of(checkpoint_dir: Path) -> Path:
        checkpoint_dir = Path(checkpoint_dir)
        return checkpoint_dir.parent if checkpoint_dir.name.startswith("step-") else checkpoint_dir

    def on_SaveCheckpoint(self, cmd: p.SaveCheckpoint) -> None:
        def work(job: Job) -> None:
            path = self._save(cmd.path)
            self.out.send(p.CheckpointSaved(path, cmd.req))

        self._spawn("save", cmd, work)

    def _save(self, target: str | None) -> str:
        from engine.runs.checkpoint import save_checkpoint

        with self.lock:
            current, trainer, loaded = self.current, self.trainer, self.loaded
        if current == "trainer" and trainer is not None:
            if target is not None:
                raise UserError("a training run saves into its own run directory")
            last = self.last_saved
            if not self.training and last is not None and last[0] == trainer.step:
                return last[1]
            # No pausing: Trainer.save takes the trainer's state lock, which every step
            # holds, so each save (two arriving together too, one after the other) holds
            # the weights, optimizer and RNGs of one step while training goes on.
            return str(trainer.save(tags=("last",)))
        if current == "checkpoint" and loaded is not None:
            if target is None:
                return str(loaded.path)
            meta = {
                k: v
                for k, v in loaded.meta.items()
                if k not in ("format", "version", "model", "vocab", "saved_at")
            }
            path = save_checkpoint(
                user_path(target), model=loaded.model, vocab=loaded.vocab, meta=meta
            )
            return str(path)
        raise UserError("no model to save yet: train one first")

    def on_LoadCheckpoint(self, cmd: p.LoadCheckpoint) -> None:
        if self.training:
            raise UserError("stop training before loading a checkpoint")

        def work(job: Job) -> None:
            from engine.data.words import char_vocab
            from engine.runs.checkpoint import load_checkpoint

            loaded = load_checkpoint(cmd.path, self.device, prefer="best")
            with self.lock:
                self.loaded = loaded
                self.current = "checkpoint"
                corpus = self.corpus
            meta = loaded.meta
            self.out.send(
                p.CheckpointLoaded(
                    path=str(loaded.path),
                    run_dir=str(self._run_dir_of(loaded.path)),
                    model_type=loaded.model.config.model_type,
                    model=loaded.model.config.as_dict(),
                    train=dict(meta.get("train") or {}),
                    step=loaded.step,
                    history=loaded.history,
                    corpus=str((meta.get("corpus") or {}).get("name", "")),
                    vocab_size=len(loaded.vocab),
                    parameters=loaded.model.num_parameters(),
                    vocab_matches_corpus=corpus is not None
                    and corpus.vocab == char_vocab(loaded.vocab),
                    req=cmd.req,
                    metrics=self._metrics_of(self._run_dir_of(loaded.path), loaded.step),
                    labels=list(loaded.labels),
                )
            )

        self._spawn("checkpoint", cmd, work)

    def on_ListRuns(self, cmd: p.ListRuns) -> None:
        self.out.send(p.RunsListed(list_runs()))
