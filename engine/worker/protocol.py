"""The commands and events that cross the worker queue.

The TUI and the engine share nothing but these: small dataclasses of numbers,
strings, lists and dicts (and the sampling settings as the frozen
engine.decoding.params.SamplingParams, checked once where it is built), never
tensors, so they pickle cheaply across a process boundary and can be read by code
that never imports torch. Commands that start
something long (a corpus load, a generation, a comparison) carry a request id
`req`, chosen by the sender, that every event about it repeats, so the UI can
drop events of a request it has since replaced.

Commands live in engine/worker/commands.py, events in engine/worker/engine_events.py;
this module gathers them under one name (`from engine.worker import protocol as p`).
It imports nothing heavy: the UI process imports it at start-up.
"""

from __future__ import annotations

from dataclasses import is_dataclass
from types import ModuleType

from engine.training import events as training_events

# The trainer's own events cross the queue unchanged (they are plain already).
from engine.training.events import (
    CheckpointEvent,
    EvalEvent,
    EvalProgressEvent,
    StatusEvent,
    StepEvent,
    TrainResult,
)
from engine.worker import commands, engine_events
from engine.worker.commands import (
    INSPECT_MAX_CHARS,
    AddToBlend,
    Cancel,
    ClearBlend,
    Compare,
    Evaluate,
    FindUnits,
    Generate,
    InspectAttention,
    InspectEmbeddings,
    InspectSaliency,
    InspectText,
    InspectUnit,
    ListRuns,
    LoadCheckpoint,
    LoadCorpus,
    LRFind,
    Pause,
    Resume,
    SaveCheckpoint,
    Shutdown,
    Stop,
    Train,
    new_request_id,
)
from engine.worker.engine_events import (
    AttentionWeights,
    BlendChanged,
    CharMapReady,
    CheckpointLoaded,
    CheckpointSaved,
    CompareResult,
    CorpusLoaded,
    CorpusLoading,
    DownloadProgress,
    EngineDied,
    EngineReady,
    ErrorEvent,
    Evaluated,
    EvaluateProgress,
    GenerationChunk,
    GenerationDone,
    GenerationStarted,
    InspectReady,
    LRFindDone,
    LRFindPoint,
    RunsListed,
    SaliencyScores,
    TrainFinished,
    TrainSample,
    TrainStarted,
    UnitsFound,
    UnitValues,
)


def _dataclasses_of(module: ModuleType) -> tuple[type, ...]:
    """Every dataclass a module defines, in the order written: a new command or event
    joins the protocol by being written in its module, not by a second list here."""
    return tuple(
        value
        for value in vars(module).values()
        if isinstance(value, type) and is_dataclass(value) and value.__module__ == module.__name__
    )


COMMANDS = _dataclasses_of(commands)

# Every event the engine sends: its own, then the trainer's (the UI keeps a handler
# table over these, checked when each receiving class is defined). TrainResult is the
# trainer's return value, not an event: TrainFinished carries it across.
EVENTS = _dataclasses_of(engine_events) + tuple(
    event for event in _dataclasses_of(training_events) if event is not TrainResult
)

__all__ = [
    "COMMANDS",
    "EVENTS",
    "INSPECT_MAX_CHARS",
    "AddToBlend",
    "AttentionWeights",
    "BlendChanged",
    "Cancel",
    "CharMapReady",
    "CheckpointEvent",
    "CheckpointLoaded",
    "CheckpointSaved",
    "ClearBlend",
    "Compare",
    "CompareResult",
    "CorpusLoaded",
    "CorpusLoading",
    "DownloadProgress",
    "EngineDied",
    "EngineReady",
    "ErrorEvent",
    "EvalEvent",
    "EvalProgressEvent",
    "Evaluate",
    "EvaluateProgress",
    "Evaluated",
    "FindUnits",
    "Generate",
    "GenerationChunk",
    "GenerationDone",
    "GenerationStarted",
    "InspectAttention",
    "InspectEmbeddings",
    "InspectReady",
    "InspectSaliency",
    "InspectText",
    "InspectUnit",
    "LRFind",
    "LRFindDone",
    "LRFindPoint",
    "ListRuns",
    "LoadCheckpoint",
    "LoadCorpus",
    "Pause",
    "Resume",
    "RunsListed",
    "SaliencyScores",
    "SaveCheckpoint",
    "Shutdown",
    "StatusEvent",
    "StepEvent",
    "Stop",
    "Train",
    "TrainFinished",
    "TrainSample",
    "TrainStarted",
    "UnitValues",
    "UnitsFound",
    "new_request_id",
]
