"""The engine's generation, comparison and evaluation commands (a mixin of EngineServer)."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from engine.errors import UserError
from engine.worker import protocol as p
from engine.worker.jobs import Job

if TYPE_CHECKING:  # pragma: no cover
    from engine.data.corpus import Corpus
    from engine.decoding.params import SamplingParams


class GenerationHandlers:
    """Generate, compare and evaluate."""

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

    def _val_fraction(self) -> float:
        """The held-out share the current model was trained with (its split, not the default)."""
        with self.lock:
            current, trainer, loaded = self.current, self.trainer, self.loaded
        if current == "trainer" and trainer is not None:
            return float(trainer.config.val_fraction)
        if current == "checkpoint" and loaded is not None:
            return float(loaded.train_config.get("val_fraction", 0.1))
        return 0.1

    def _current_source(self) -> tuple[Any, Any]:
        """(Source, device): the current model with its labels, as a blend member."""
        from engine.decoding.loading import Source

        with self.lock:
            current, trainer, loaded = self.current, self.trainer, self.loaded
        model, vocab, unigram, device = self._current_model()
        if current == "trainer" and trainer is not None:
            labels = tuple(trainer.corpus.labels) if trainer.train_segments is not None else ()
        else:
            labels = tuple(loaded.labels) if loaded is not None else ()
        return Source(model, vocab, unigram, labels, "current"), device

    def _decoder(self, condition: str | None, guidance: float | None) -> tuple[Any, Any]:
        """(Decoder, device): the current model, conditioned and blended as asked."""
        from engine.decoding.loading import build_decoder

        source, device = self._current_source()
        with self.lock:
            members = list(self.blend)
        decoder = build_decoder([source, *members], condition=condition, guidance=guidance)
        return decoder, device

    def on_AddToBlend(self, cmd: p.AddToBlend) -> None:
        def work(job: Job) -> None:
            from engine.runs.checkpoint import load_checkpoint

            loaded = load_checkpoint(cmd.path, self.device, prefer="best")
            with self.lock:
                self.blend.append(loaded)
            self._blend_changed(cmd.req)

        self._spawn("checkpoint", cmd, work)

    def on_ClearBlend(self, cmd: p.ClearBlend) -> None:
        with self.lock:
            self.blend.clear()
        self._blend_changed(0)

    def _blend_changed(self, req: int) -> None:
        from engine.decoding.loading import checkpoint_name

        with self.lock:
            names = [checkpoint_name(c) for c in self.blend]
        description = ""
        if names:
            share = 1.0 / (len(names) + 1)
            description = "mixture of " + " + ".join(
                f"{name} {share:.0%}" for name in ["current", *names]
            )
        self.out.send(p.BlendChanged(names, description, req))

    def _snapshots(self) -> Any:
        """States kept along recent generations, so a branch resumes where it forks."""
        store = getattr(self, "_state_snapshots", None)
        if store is None:
            from engine.decoding.snapshots import StateSnapshots

            store = self._state_snapshots = StateSnapshots()
        return store

    def on_Generate(self, cmd: p.Generate) -> None:
        params = _seeded(cmd.params)
        self._cancel_kind("generate")

        def work(job: Job) -> None:
            from engine.decoding.generator import Generator
            from engine.decoding.scoring import continuation_chars

            # The snapshot is taken here, not in the command loop: it may wait for an
            # optimizer step to finish.
            decoder, device = self._decoder(cmd.condition, cmd.guidance)
            model, vocab, unigram = decoder.model, decoder.vocab, decoder.unigram

            generator = Generator(model, vocab, unigram, device=str(device))
            dropped = "".join(vocab.missing(cmd.prompt))
            if vocab.missing(cmd.prefix):
                raise UserError("the text to continue has characters outside the vocabulary")
            full = cmd.prompt + cmd.prefix
            if not full and self._items_model()[0]:
                full = "\n"  # a line-per-item model: an empty prompt starts a fresh item
            self.out.send(p.GenerationStarted(cmd.prompt, params, dropped, cmd.req, cmd.prefix))
            started = time.perf_counter()
            beams: list[dict] = []
            if params.strategy == "beam":
                results = generator.beam_search(
                    full, params, num_return=min(3, params.beam_width), drop_unknown=True
                )
                beams = [{"text": r.text, "logprob": r.logprob, "score": r.score} for r in results]
                text = results[0].text if results else ""
                scored = continuation_chars(model, vocab, generator.unigram, full, text)
                for info in scored:
                    if job.cancel.is_set():
                        break
                    self.out.chars(cmd.req, *info)
            else:
                pieces = []
                for info in generator.stream(
                    full,
                    params,
                    drop_unknown=True,
                    cancel=job.cancel,
                    snapshots=self._snapshots(),
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
                if job.kind in ("generate", "compare", "lr-find") and cmd.req in (0, job.req):
                    job.cancel.set()

    def on_Compare(self, cmd: p.Compare) -> None:
        self._cancel_kind("compare")
        corpus = self.corpus

        def work(job: Job) -> None:
            from engine.decoding.compare import compare_conditions, compare_strategies
            from engine.decoding.generator import Generator

            # Comparing labels: guidance applies to each label's row, not to the whole model.
            decoder, device = self._decoder(cmd.condition, None if cmd.by_label else cmd.guidance)
            vocab = decoder.vocab
            generator = Generator(decoder.model, vocab, decoder.unigram, device=str(device))
            same_corpus = corpus is not None and corpus.vocab == vocab
            words = _corpus_words(corpus) if same_corpus else None
            items, val_fraction = self._items_model()
            item_sets = _item_sets(corpus, val_fraction) if items and same_corpus else None
            rows: list[dict] = []
            found, note = None, ""
            if not cmd.by_label and not items:
                found, note = _compare_reference(cmd, corpus if same_corpus else None, val_fraction)
            prompt = found.prompt if found is not None else cmd.prompt

            def result(done: bool) -> p.CompareResult:
                return p.CompareResult(
                    prompt,
                    list(rows),
                    done,
                    cmd.req,
                    reference=found.text if found is not None else None,
                    reference_offset=found.offset if found is not None else -1,
                    note=note,
                    items=items,
                )

            def on_row(row: Any) -> None:
                rows.append(_plain(row.as_dict()))
                self.out.send(result(False))

            common = {
                "length": cmd.length,
                "seed": cmd.seed,
                "corpus_words": words,
                "drop_unknown": True,
                "cancel": job.cancel,
                "on_row": on_row,
            }
            if cmd.by_label:
                if not decoder.labels:
                    raise UserError("comparing labels needs a model trained with labels")

                def generator_for(label: str) -> Generator:
                    labelled = label != "none"
                    built = self._decoder(
                        label if labelled else None, cmd.guidance if labelled else None
                    )[0]
                    return Generator(built.model, built.vocab, built.unigram, device=str(device))

                compare_conditions(
                    generator_for,
                    ["none", *decoder.labels],
                    cmd.prompt,
                    num_samples=cmd.num_samples,
                    **common,
                )
            else:
                compare_strategies(
                    generator,
                    prompt,
                    num_samples=max(cmd.num_samples, 20) if items else cmd.num_samples,
                    items=items,
                    item_sets=item_sets,
                    reference=found.text if found is not None and not note else None,
                    **common,
                )
            self.out.send(result(True))

        self._spawn("compare", cmd, work)

    def _items_model(self) -> tuple[bool, float]:
        """(was the current model trained on line-per-item text, its validation fraction)."""
        with self.lock:
            current, trainer, loaded = self.current, self.trainer, self.loaded
        if current == "trainer" and trainer is not None:
            return bool(trainer.config.items), float(trainer.config.val_fraction)
        if current == "checkpoint" and loaded is not None:
            train = loaded.train_config
            return bool(train.get("items")), float(train.get("val_fraction", 0.1))
        return False, 0.1

    def on_Evaluate(self, cmd: p.Evaluate) -> None:
        corpus = self.corpus
        if corpus is None:
            raise UserError("no corpus loaded to evaluate on")

        def work(job: Job) -> None:
            from engine.training.evaluate import evaluate_split

            model, vocab, _, device = self._current_model()
            token_chars = None
            if vocab.kind == "word":  # the same characters, in the model's word tokens
                from engine.data.words import split_text

                val = vocab.encode(split_text(corpus, self._val_fraction())[1])
                token_chars = vocab.token_lengths()
            elif corpus.vocab != vocab:
                raise UserError(f"the model's vocabulary does not match '{corpus.name}'")
            else:
                _, val = corpus.split(self._val_fraction())

            def progress(done: int, total: int) -> None:
                self.out.latest("evaluate", p.EvaluateProgress(done, total, cmd.req))

            result = evaluate_split(model, val, device, progress=progress, token_chars=token_chars)
            self.out.send(
                p.Evaluated(result.loss, result.bpc, result.perplexity, result.chars, cmd.req)
            )

        self._spawn("evaluate", cmd, work)


def _seeded(params: SamplingParams) -> SamplingParams:
    """The Generate's parameters as they came (checked when the sender built them, and
    trusted by the generator), or with a drawn seed when they have none (`replace`
    checks that copy), reported in GenerationStarted so the UI can repeat it."""
    if params.seed is not None:
        return params
    return replace(params, seed=random.randrange(1 << 31))


def _item_sets(corpus: Corpus, val_fraction: float) -> tuple[frozenset[str], frozenset[str]]:
    """The training and held-out items of a line-per-item corpus, for item novelty."""
    from engine.data.items import decode_ids, split_item_sets

    train, val = corpus.split(val_fraction)
    chars = corpus.vocab.chars
    return split_item_sets(decode_ids(chars, train), decode_ids(chars, val))


_WORDS_LIMIT = 20_000_000
_words_cache: dict[str, frozenset[str]] = {}


def _compare_reference(
    cmd: p.Compare, corpus: Corpus | None, val_fraction: float
) -> tuple[Any, str]:
    """(engine.decoding.references.Reference or None, why there is none when one was asked
    for, or why it has no chrF: then the reference still comes, to show, and scores nothing)."""
    from engine.decoding.quality import chrf
    from engine.decoding.references import held_out_prompt, held_out_text, reference_after

    if corpus is None:
        return None, "a held-out prompt needs the model's corpus loaded" if cmd.held_out else ""
    held_out = held_out_text(corpus, val_fraction)
    if cmd.held_out:
        found = held_out_prompt(held_out, cmd.length, cmd.seed)
        if found is None:
            return None, f"the held-out split is shorter than a prompt and {cmd.length} chars"
    else:
        found = reference_after(held_out, cmd.prompt, cmd.length)
    if found is None:
        return None, ""
    try:
        chrf(["a"], ["a"])  # sacrebleu is an optional extra
    except UserError as exc:
        return found, f"no chrF: {exc}"  # the prompt and the true text still show
    return found, ""


def _corpus_words(corpus: Corpus) -> frozenset[str] | None:
    """The corpus's word set, for the novelty column (skipped for huge corpora)."""
    from engine.decoding.textstats import corpus_word_set

    if len(corpus) > _WORDS_LIMIT:
        return None
    key = corpus.content_key or corpus.name
    if key not in _words_cache:
        _words_cache.clear()
        _words_cache[key] = corpus_word_set(corpus)
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
