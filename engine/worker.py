"""The engine worker: the engine in its own process (or a thread), and the asyncio
client the TUI talks to it through.

Why a process: torch can use every core while the UI stays responsive, a crash
or an out-of-memory kill in the engine is reported instead of taking the UI
down, and a hard stop is always possible. The UI process imports this module at
start-up, so nothing here imports torch at module level: only the engine side
does, once it runs.

Inside the engine the command loop never blocks: training runs in a thread (so
generation from `trainer.snapshot()` can run beside it), and corpus loads,
generations, evaluations and comparisons run in threads of their own. Events go
through an `Outbox` that coalesces metric events to about ten a second and
batches generated characters per frame, so the UI is never flooded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import queue
import random
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import protocol as p
from engine.errors import ConfigError, UserError
from engine.paths import data_dir

if TYPE_CHECKING:  # pragma: no cover
    from engine.checkpoint import Checkpoint
    from engine.corpus import Corpus
    from engine.trainer import Trainer

METRIC_INTERVAL_S = 0.1  # at most ~10 metric events a second
FRAME_S = 1 / 30  # generated characters are batched per frame
SHUTDOWN_GRACE_S = 8.0


# ----- where things live ------------------------------------------------------------


def runs_dir() -> Path:
    path = data_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_path() -> Path:
    return data_dir() / "engine.log"


def new_run_dir(corpus_name: str, model_type: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", corpus_name).strip("-.")[:40] or "corpus"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = runs_dir() / f"{slug}-{model_type}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = runs_dir() / f"{slug}-{model_type}-{stamp}-{suffix}"
    return path


def list_runs(root: Path | None = None, limit: int = 50) -> list[dict]:
    """Saved runs, newest first, read from their state.json (no torch needed)."""
    root = root or runs_dir()
    runs = []
    for run in root.iterdir() if root.exists() else ():
        if not run.is_dir() or run.name.startswith("."):
            continue
        state_file = next(
            (run / tag / "state.json" for tag in ("last", "best") if (run / tag).exists()), None
        )
        if state_file is None or not state_file.exists():
            continue
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        history = state.get("history") or []
        runs.append(
            {
                "run_dir": str(run),
                "name": run.name,
                "step": int(state.get("step", 0)),
                "model_type": (state.get("model") or {}).get("model_type", "?"),
                "corpus": (state.get("corpus") or {}).get("name", "?"),
                "val_loss": history[-1].get("val_loss") if history else None,
                "best_val_loss": state.get("best_val_loss"),
                "saved_at": float(state.get("saved_at", 0.0)),
            }
        )
    runs.sort(key=lambda r: r["saved_at"], reverse=True)
    return runs[:limit]


def _log_exception(context: str) -> None:
    """Write a traceback to the engine log: the user sees one line, a developer the rest."""
    try:
        with open(log_path(), "a", encoding="utf-8") as log:
            log.write(f"--- {datetime.now().isoformat()} {context}\n")
            traceback.print_exc(file=log)
    except OSError:
        pass


# ----- engine side: the outbox ------------------------------------------------------


class Outbox:
    """Events out of the engine, in order, with metrics coalesced and characters batched.

    `send` goes out at once (after anything pending, so order is kept);
    `latest` keeps only the newest event of a kind until the next metric tick;
    `chars` collects generated characters until the next frame.
    """

    def __init__(self, send: Callable[[object], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._latest: dict[str, object] = {}
        self._last_metric = 0.0
        self._chars: dict[int, p.GenerationChunk] = {}
        self._closed = threading.Event()
        self.broken = False
        self._thread = threading.Thread(target=self._tick, name="outbox", daemon=True)
        self._thread.start()

    def _raw(self, event: object) -> None:
        if self.broken:
            return
        try:
            self._send(event)
        except (OSError, EOFError, ValueError):
            self.broken = True  # the UI is gone; the command loop will see EOF and exit

    def _flush_chars(self) -> None:
        chunks, self._chars = self._chars, {}
        for chunk in chunks.values():
            self._raw(chunk)

    def _flush_latest(self) -> None:
        latest, self._latest = self._latest, {}
        for event in latest.values():
            self._raw(event)
        self._last_metric = time.monotonic()

    def send(self, event: object) -> None:
        with self._lock:
            self._flush_latest()
            self._flush_chars()
            self._raw(event)

    def latest(self, key: str, event: object) -> None:
        with self._lock:
            self._latest[key] = event

    def chars(self, req: int, char: str, prob: float, model_prob: float, top: list) -> None:
        with self._lock:
            chunk = self._chars.get(req)
            if chunk is None:
                chunk = self._chars[req] = p.GenerationChunk("", [], [], [], req=req)
            chunk.text += char
            chunk.probs.append(round(float(prob), 5))
            chunk.model_probs.append(round(float(model_prob), 5))
            chunk.tops.append([(c, round(float(q), 5)) for c, q in top])

    def _tick(self) -> None:
        while not self._closed.wait(FRAME_S):
            with self._lock:
                self._flush_chars()
                if self._latest and time.monotonic() - self._last_metric >= METRIC_INTERVAL_S:
                    self._flush_latest()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._flush_latest()
            self._flush_chars()


# ----- engine side: the server ------------------------------------------------------


class _Job:
    """A cancellable piece of work running in its own thread."""

    def __init__(self, kind: str, req: int) -> None:
        self.kind = kind
        self.req = req
        self.cancel = threading.Event()
        self.thread: threading.Thread | None = None


class EngineServer:
    """Executes commands; everything slow runs in a thread so commands keep flowing."""

    def __init__(self, outbox: Outbox) -> None:
        self.out = outbox
        self.lock = threading.RLock()
        self.device: Any = None
        self.corpus: Corpus | None = None
        self.corpus_req = 0
        self.trainer: Trainer | None = None
        self.train_thread: threading.Thread | None = None
        self.train_stop = threading.Event()
        self.trainer_paused = threading.Event()
        self.last_saved: tuple[int, str] | None = None
        self.loaded: Checkpoint | None = None
        self.current: str | None = None  # "trainer" or "checkpoint": whose model generates
        self.sampling: dict = {}
        self.jobs: dict[int, _Job] = {}
        self._sampling_now = threading.Event()
        self._last_sample_at = 0.0

    # ----- life cycle --------------------------------------------------------------

    def start(self) -> None:
        import torch

        from engine.device import resolve_device

        self.device = resolve_device("auto")
        self.out.send(
            p.EngineReady(
                device=str(self.device),
                torch_version=torch.__version__.split("+")[0],
                threads=torch.get_num_threads(),
                pid=os.getpid(),
            )
        )

    def shutdown(self) -> None:
        for job in list(self.jobs.values()):
            job.cancel.set()
        trainer, thread = self.trainer, self.train_thread
        self.train_stop.set()
        if trainer is not None and thread is not None and thread.is_alive():
            trainer.config.final_eval = False  # quitting: save the run, skip the long scoring
            trainer.stop()
            thread.join(SHUTDOWN_GRACE_S)

    def handle(self, command: object) -> bool:
        """Run one command; False once the engine should exit."""
        if isinstance(command, p.Shutdown):
            return False
        name = type(command).__name__
        handler = getattr(self, f"on_{name}", None)
        req = int(getattr(command, "req", 0) or 0)
        if handler is None:
            self.out.send(p.ErrorEvent(f"unknown command {name}", name, req))
            return True
        self._guarded(name, req, lambda: handler(command))
        return True

    def _guarded(self, name: str, req: int, work: Callable[[], object]) -> None:
        try:
            work()
        except UserError as exc:
            self.out.send(p.ErrorEvent(str(exc).strip().splitlines()[0], name, req))
        except Exception as exc:
            _log_exception(name)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            message = f"internal error in {name}: {type(exc).__name__}" + (
                f": {first}" if first else ""
            )
            self.out.send(p.ErrorEvent(f"{message} (details in {log_path()})", name, req, False))

    def _spawn(self, kind: str, command: object, work: Callable[[_Job], object]) -> _Job:
        """Run `work` in a thread; its errors are reported as errors of `command`."""
        req = int(getattr(command, "req", 0) or 0)
        job = _Job(kind, req)

        def run() -> None:
            try:
                self._guarded(type(command).__name__, req, lambda: work(job))
            finally:
                with self.lock:
                    if self.jobs.get(id(job)) is job:
                        del self.jobs[id(job)]

        with self.lock:
            self.jobs[id(job)] = job
        job.thread = threading.Thread(target=run, name=f"{kind}-{req}", daemon=True)
        job.thread.start()
        return job

    def _cancel_kind(self, kind: str) -> None:
        with self.lock:
            for job in self.jobs.values():
                if job.kind == kind:
                    job.cancel.set()

    @property
    def training(self) -> bool:
        return self.train_thread is not None and self.train_thread.is_alive()

    # ----- corpus ------------------------------------------------------------------

    def on_LoadCorpus(self, cmd: p.LoadCorpus) -> None:
        with self.lock:
            self.corpus_req = cmd.req

        def work(job: _Job) -> None:
            from engine.corpus import load_corpus

            self.out.send(p.CorpusLoading(cmd.spec, cmd.req))

            def progress(done: int, total: int | None) -> None:
                self.out.latest("download", p.DownloadProgress(cmd.spec, done, total, cmd.req))

            corpus = load_corpus(cmd.spec, cmd.encoding or "utf-8", download_progress=progress)
            stats = corpus.stats().as_dict()
            with self.lock:
                if self.corpus_req != cmd.req:
                    return  # a later load replaced this one
                self.corpus = corpus
            self.out.send(p.CorpusLoaded(cmd.spec, corpus.name, stats, cmd.req))

        self._spawn("corpus", cmd, work)

    # ----- training ----------------------------------------------------------------

    def on_Train(self, cmd: p.Train) -> None:
        from engine.models import make_config
        from engine.presets import preset
        from engine.trainer import TrainConfig

        if self.training:
            raise UserError("training is already running: stop it first")
        corpus = self.corpus
        if corpus is None:
            raise UserError("no corpus loaded yet: pick one in the Corpus tab first")
        model_values, train_values = preset(cmd.model_type, cmd.preset)
        model_values.update(cmd.model)
        train_values.update(cmd.train)
        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(train_values) - known)
        if unknown:
            raise ConfigError(f"unknown training setting {', '.join(unknown)}")
        config = TrainConfig.from_dict(train_values)
        config.validate()
        model_config = None
        if cmd.resume:
            if self.loaded is None:
                raise UserError("nothing to continue: load a checkpoint first")
            out_dir = self._run_dir_of(self.loaded.path)
            if self.loaded.vocab != corpus.vocab:
                raise UserError(
                    f"the checkpoint was trained on another vocabulary than '{corpus.name}': "
                    "load its corpus first"
                )
        else:
            model_config = make_config(cmd.model_type, **model_values)
            out_dir = new_run_dir(corpus.name, cmd.model_type)
        self.train_stop.clear()
        self.trainer_paused.clear()
        self.train_thread = threading.Thread(
            target=self._train,
            args=(cmd, corpus, model_config, config, out_dir),
            name="train",
            daemon=True,
        )
        self.train_thread.start()

    def _train(self, cmd: p.Train, corpus: Corpus, model_config, config, out_dir: Path) -> None:
        def run() -> None:
            from engine.trainer import Trainer

            self.out.send(p.StatusEvent("starting", "building the model"))
            trainer = Trainer(
                corpus,
                model_config,
                config,
                out_dir=out_dir,
                on_event=lambda event: self._on_train_event(event, cmd),
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
                )
            )
            if self.train_stop.is_set():
                trainer.stop()
            self._last_sample_at = time.monotonic()
            result = trainer.run()
            self._train_sample(trainer, cmd.sample_chars)
            self.out.send(p.TrainFinished(result.as_dict()))

        finished = False

        def guarded_run() -> None:
            nonlocal finished
            run()
            finished = True

        try:
            self._guarded("Train", 0, guarded_run)
        finally:
            self.trainer_paused.clear()
            if not finished:
                self.out.send(p.StatusEvent("failed", "training failed"))

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
            from engine.generate import Generator, SamplingParams

            step = trainer.step
            generator = Generator(
                trainer.snapshot(), trainer.corpus.vocab, trainer.corpus.unigram(), trainer.device
            )
            params = SamplingParams(temperature=0.8, length=chars, seed=step)
            text = generator.generate([""], params)[0]
            self.out.send(p.TrainSample(step, text))
        except Exception:
            _log_exception("train sample")
        finally:
            self._sampling_now.clear()

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
        def work(job: _Job) -> None:
            path = self._save(cmd.path)
            self.out.send(p.CheckpointSaved(path, cmd.req))

        self._spawn("save", cmd, work)

    def _save(self, target: str | None) -> str:
        from engine.checkpoint import save_checkpoint

        with self.lock:
            current, trainer, loaded = self.current, self.trainer, self.loaded
        if current == "trainer" and trainer is not None:
            if target is not None:
                raise UserError("a training run saves into its own run directory")
            if self.training:
                was_paused = trainer.paused
                trainer.pause()
                while not self.trainer_paused.wait(0.05):  # wait for the step in flight
                    if not self.training:
                        break
                try:
                    if self.training:
                        return str(trainer.save(tags=("last",)))
                finally:
                    if not was_paused:
                        trainer.resume()
            if self.last_saved is not None and self.last_saved[0] == trainer.step:
                return self.last_saved[1]
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
                Path(target).expanduser(), model=loaded.model, vocab=loaded.vocab, meta=meta
            )
            return str(path)
        raise UserError("no model to save yet: train one first")

    def on_LoadCheckpoint(self, cmd: p.LoadCheckpoint) -> None:
        if self.training:
            raise UserError("stop training before loading a checkpoint")

        def work(job: _Job) -> None:
            from engine.checkpoint import load_checkpoint

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
                    vocab_matches_corpus=corpus is not None and corpus.vocab == loaded.vocab,
                    req=cmd.req,
                )
            )

        self._spawn("checkpoint", cmd, work)

    def on_ListRuns(self, cmd: p.ListRuns) -> None:
        self.out.send(p.RunsListed(list_runs()))

    # ----- generation --------------------------------------------------------------

    def _current_model(self) -> tuple[Any, Any, Any, Any]:
        """(model, vocab, unigram, device) to generate from: the latest weights."""
        with self.lock:
            current, trainer, loaded = self.current, self.trainer, self.loaded
        if current == "trainer" and trainer is not None:
            return (
                trainer.snapshot(),
                trainer.corpus.vocab,
                trainer.corpus.unigram(),
                trainer.device,
            )
        if current == "checkpoint" and loaded is not None:
            return loaded.model, loaded.vocab, loaded.unigram, self.device
        raise UserError("no model yet: train one (Training tab) or load a checkpoint")

    def _params(self, overrides: dict) -> Any:
        from engine.generate import SamplingParams

        values = {**self.sampling, **overrides}
        known = {f.name for f in fields(SamplingParams)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown sampling parameter {', '.join(unknown)}")
        if "stop" in values:
            values["stop"] = tuple(values["stop"] or ())
        params = SamplingParams(**values)
        params.validate()
        return params

    def on_SetSampling(self, cmd: p.SetSampling) -> None:
        params = self._params(cmd.params)
        self.sampling.update(cmd.params)
        self.out.send(p.SamplingSet(_plain(asdict(params))))

    def on_Generate(self, cmd: p.Generate) -> None:
        params = self._params(cmd.params)
        if params.seed is None:
            params.seed = random.randrange(1 << 31)
        self._cancel_kind("generate")

        def work(job: _Job) -> None:
            from engine.generate import Generator

            # The snapshot is taken here, not in the command loop: it may wait for an
            # optimizer step to finish.
            model, vocab, unigram, device = self._current_model()

            generator = Generator(model, vocab, unigram, device=str(device))
            dropped = "".join(vocab.missing(cmd.prompt))
            self.out.send(
                p.GenerationStarted(cmd.prompt, _plain(params.as_dict()), dropped, cmd.req)
            )
            started = time.perf_counter()
            beams: list[dict] = []
            if params.strategy == "beam":
                results = generator.beam_search(
                    cmd.prompt, params, num_return=min(3, params.beam_width), drop_unknown=True
                )
                beams = [{"text": r.text, "logprob": r.logprob, "score": r.score} for r in results]
                text = results[0].text if results else ""
                for info in _score_text(model, vocab, unigram, device, cmd.prompt, text):
                    if job.cancel.is_set():
                        break
                    self.out.chars(cmd.req, *info)
            else:
                pieces = []
                for info in generator.stream(
                    cmd.prompt, params, drop_unknown=True, cancel=job.cancel
                ):
                    pieces.append(info.char)
                    self.out.chars(cmd.req, info.char, info.prob, info.model_prob, info.top)
                text = "".join(pieces)
            seconds = time.perf_counter() - started
            self.out.send(
                p.GenerationDone(
                    text=text,
                    chars=len(text),
                    seconds=seconds,
                    chars_per_s=len(text) / max(seconds, 1e-9),
                    cancelled=job.cancel.is_set(),
                    beams=beams,
                    req=cmd.req,
                )
            )

        self._spawn("generate", cmd, work)

    def on_Cancel(self, cmd: p.Cancel) -> None:
        with self.lock:
            for job in self.jobs.values():
                if job.kind in ("generate", "compare") and cmd.req in (0, job.req):
                    job.cancel.set()

    def on_Compare(self, cmd: p.Compare) -> None:
        self._cancel_kind("compare")
        corpus = self.corpus

        def work(job: _Job) -> None:
            from engine.compare import compare_strategies
            from engine.generate import Generator

            model, vocab, unigram, device = self._current_model()

            generator = Generator(model, vocab, unigram, device=str(device))
            words = _corpus_words(corpus) if corpus is not None and corpus.vocab == vocab else None
            rows: list[dict] = []

            def on_row(row: Any) -> None:
                rows.append(_plain(row.as_dict()))
                self.out.send(p.CompareResult(cmd.prompt, list(rows), False, cmd.req))

            compare_strategies(
                generator,
                cmd.prompt,
                length=cmd.length,
                num_samples=cmd.num_samples,
                seed=cmd.seed,
                corpus_words=words,
                drop_unknown=True,
                cancel=job.cancel,
                on_row=on_row,
            )
            self.out.send(p.CompareResult(cmd.prompt, rows, True, cmd.req))

        self._spawn("compare", cmd, work)

    def on_Evaluate(self, cmd: p.Evaluate) -> None:
        corpus = self.corpus
        if corpus is None:
            raise UserError("no corpus loaded to evaluate on")

        def work(job: _Job) -> None:
            from engine.evaluate import evaluate_split

            model, vocab, _, device = self._current_model()
            if corpus.vocab != vocab:
                raise UserError(f"the model's vocabulary does not match '{corpus.name}'")

            _, val = corpus.split()
            result = evaluate_split(model, val, device)
            self.out.send(
                p.Evaluated(result.loss, result.bpc, result.perplexity, result.chars, cmd.req)
            )

        self._spawn("evaluate", cmd, work)


def _score_text(model, vocab, unigram, device, prompt: str, text: str):
    """(char, prob, model_prob, top) for each char of `text` after `prompt`.

    Beam search returns whole texts; scoring them afterwards (one forward pass when
    the context fits) gives the same per-character colouring and alternatives as
    streamed sampling.
    """
    import torch

    if not text:
        return
    chars = vocab.chars
    context = vocab.encode(prompt, drop_unknown=True).tolist()
    ids = vocab.encode(text, drop_unknown=True).tolist()

    def entry(target: int, probs: torch.Tensor) -> tuple:
        top = torch.topk(probs, min(5, probs.numel()))
        q = float(probs[target])
        return chars[target], q, q, [(chars[int(i)], float(v)) for v, i in zip(*top, strict=True)]

    if not context:  # the first character was drawn from the unigram distribution
        yield entry(ids[0], torch.as_tensor(unigram, dtype=torch.float32))
        context, ids = ids[:1], ids[1:]
    sequence = context + ids
    window = model.max_context
    with torch.inference_mode():
        if window is None or len(sequence) - 1 <= window:
            tokens = torch.tensor([sequence[:-1]], device=device)
            logits, _ = model(tokens)
            probs = torch.softmax(logits[0].float(), dim=-1).cpu()
            for position in range(len(context), len(sequence)):
                yield entry(sequence[position], probs[position - 1])
            return
        for position in range(len(context), len(sequence)):
            tokens = torch.tensor([sequence[max(0, position - window) : position]], device=device)
            logits, _ = model(tokens)
            yield entry(sequence[position], torch.softmax(logits[0, -1].float(), dim=-1).cpu())


_WORDS_LIMIT = 20_000_000
_words_cache: dict[str, frozenset[str]] = {}


def _corpus_words(corpus: Corpus) -> frozenset[str] | None:
    """The corpus's word set, for the novelty column (skipped for huge corpora)."""
    from engine.textstats import word_set

    if len(corpus) > _WORDS_LIMIT:
        return None
    key = corpus.content_key or corpus.name
    if key not in _words_cache:
        _words_cache.clear()
        _words_cache[key] = word_set(corpus.vocab.decode(corpus.ids.tolist()))
    return _words_cache[key]


def _plain(value: Any) -> Any:
    """Tuples to lists and numpy/torch scalars to Python numbers: safe to pickle anywhere."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def serve(recv: Callable[[], object], send: Callable[[object], None]) -> None:
    """The engine's command loop: runs until Shutdown or until the UI goes away."""
    outbox = Outbox(send)
    server = EngineServer(outbox)
    try:
        server.start()
        while True:
            try:
                command = recv()
            except (EOFError, OSError):
                break  # the UI is gone
            if not server.handle(command):
                break
    except Exception:
        _log_exception("engine")
        with contextlib.suppress(Exception):
            outbox.send(p.ErrorEvent("the engine failed to start (see the engine log)", user=False))
    finally:
        server.shutdown()
        outbox.close()


def _process_main(conn: Any) -> None:
    """Entry point of the engine process (spawn context)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the UI
    try:  # the UI's terminal is not ours: torch warnings go to the log
        fd = os.open(log_path(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    except OSError:
        pass
    lock = threading.Lock()

    def send(event: object) -> None:
        with lock:
            conn.send(event)

    serve(conn.recv, send)
    with contextlib.suppress(OSError):
        conn.close()


# ----- UI side: the client ----------------------------------------------------------


class EngineClient:
    """The UI's handle on the engine: `send` commands, iterate `events()`.

    `mode` is "process" (default: a spawned process) or "thread" (tests). If the
    engine process dies, `events()` yields an `EngineDied` and `restart()` starts
    a fresh engine.
    """

    def __init__(self, mode: str = "process") -> None:
        if mode not in ("process", "thread"):
            raise ValueError(f"engine mode must be 'process' or 'thread', not {mode!r}")
        self.mode = mode
        self._events: asyncio.Queue[tuple[int, object]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0
        self._process: Any = None
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self._commands: queue.Queue | None = None
        self._stopping = False
        self._running = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Start the engine (returns at once; the engine says EngineReady when warm)."""
        self._loop = asyncio.get_running_loop()
        if self._events is None:
            self._events = asyncio.Queue()
        self._generation += 1
        self._stopping = False
        generation = self._generation
        if self.mode == "process":
            await asyncio.to_thread(self._start_process, generation)
        else:
            self._start_thread(generation)
        self._running = True

    def _start_process(self, generation: int) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe(duplex=True)
        process = context.Process(
            target=_process_main, args=(child,), name="charlm-engine", daemon=True
        )
        with _real_stderr():
            process.start()
        child.close()  # so that the engine's death reads as EOF here
        self._conn, self._process = parent, process
        threading.Thread(
            target=self._read_process,
            args=(generation, parent, process),
            name="engine-reader",
            daemon=True,
        ).start()

    def _start_thread(self, generation: int) -> None:
        commands: queue.Queue = queue.Queue()

        def run() -> None:
            try:
                serve(commands.get, lambda event: self._deliver(generation, event))
            finally:
                self._deliver(generation, None)

        self._commands = commands
        self._thread = threading.Thread(target=run, name="charlm-engine", daemon=True)
        self._thread.start()

    def _deliver(self, generation: int, event: object) -> None:
        loop, events = self._loop, self._events
        if loop is None or events is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed under us
            loop.call_soon_threadsafe(events.put_nowait, (generation, event))

    def _read_process(self, generation: int, conn: Any, process: Any) -> None:
        while True:
            try:
                if not conn.poll(0.1):
                    if not process.is_alive() and not conn.poll(0):
                        break
                    continue
                event = conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # an event that does not unpickle: report, keep reading
                _log_exception("client")
                continue
            self._deliver(generation, event)
        process.join(2.0)
        if not self._stopping and generation == self._generation:
            self._deliver(generation, _death_of(process.exitcode))
        self._deliver(generation, None)

    def send(self, command: object) -> bool:
        """Queue a command for the engine; False (and nothing sent) if it is not running."""
        if not self._running:
            return False
        try:
            if self.mode == "process":
                self._conn.send(command)
            else:
                assert self._commands is not None
                self._commands.put(command)
        except (OSError, ValueError, AttributeError):
            return False
        return True

    async def events(self) -> AsyncIterator[object]:
        """Events of the current engine, forever (across restarts)."""
        if self._events is None:
            self._events = asyncio.Queue()
        while True:
            generation, event = await self._events.get()
            if generation != self._generation:
                continue  # left over from an engine since replaced
            if event is None:
                self._running = False
                continue
            if isinstance(event, p.EngineDied):
                self._running = False
            yield event

    async def stop(self, timeout: float = SHUTDOWN_GRACE_S + 2.0) -> None:
        """Shut the engine down; a process that does not exit in time is killed."""
        self._stopping = True
        was_running = self._running
        self._running = False
        if self.mode == "process":
            process, conn = self._process, self._conn
            if process is None:
                return
            if was_running:
                with contextlib.suppress(OSError, ValueError):
                    conn.send(p.Shutdown())
            await asyncio.to_thread(_reap, process, timeout)
            with contextlib.suppress(OSError):
                conn.close()
        else:
            if self._commands is not None and was_running:
                self._commands.put(p.Shutdown())
            if self._thread is not None:
                await asyncio.to_thread(self._thread.join, timeout)

    def stop_now(self) -> None:
        """Synchronous last resort (atexit, crashes): make sure no engine process survives."""
        self._stopping = True
        self._running = False
        process = self._process
        if process is not None and process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(p.Shutdown())
            _reap(process, 3.0)

    async def restart(self) -> None:
        await self.stop(timeout=3.0)
        await self.start()


@contextlib.contextmanager
def _real_stderr() -> Iterator[None]:
    """Let multiprocessing see a real stderr while it spawns.

    Textual replaces sys.stderr with a capture object whose fileno() is -1, and
    multiprocessing passes stderr's descriptor to the resource tracker it starts:
    -1 there makes the spawn fail.
    """
    try:
        usable = sys.stderr is not None and sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        usable = False
    if usable or sys.__stderr__ is None:
        yield
        return
    saved, sys.stderr = sys.stderr, sys.__stderr__
    try:
        yield
    finally:
        sys.stderr = saved


def _reap(process: Any, timeout: float) -> None:
    process.join(timeout)
    if process.is_alive():
        process.terminate()
        process.join(2.0)
    if process.is_alive():
        process.kill()
        process.join(2.0)


def _death_of(exitcode: int | None) -> p.EngineDied:
    """Say in words why the engine process ended."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory, or killed from outside)" if name == "SIGKILL" else ""
        reason = f"the engine was killed by {name}{hint}"
    elif exitcode:
        reason = f"the engine exited with code {exitcode} (see {log_path()})"
    else:
        reason = "the engine exited unexpectedly"
    return p.EngineDied(exitcode, reason)
