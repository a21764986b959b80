"""Looking inside a model: unit activations, unit search, attention, saliency, character map.

Sits above decoding and below the worker in the engine's layers: it reads
models (and their checkpoints' vocabularies), never trains or generates.
"""

from engine.inspect.activations import Activations, UnitGroup, unit_activations
from engine.inspect.attention import AttentionMap, attention_at, require_transformer
from engine.inspect.charmap import CharMap, character_map
from engine.inspect.find import FindResult, UnitMatch, find_units, match_indicator, pearson_with
from engine.inspect.saliency import Saliency, saliency_at
from engine.inspect.text import MAX_TEXT_CHARS, char_label, encode_text, held_out_excerpt

__all__ = [
    "MAX_TEXT_CHARS",
    "Activations",
    "AttentionMap",
    "CharMap",
    "FindResult",
    "Saliency",
    "UnitGroup",
    "UnitMatch",
    "attention_at",
    "char_label",
    "character_map",
    "encode_text",
    "find_units",
    "held_out_excerpt",
    "match_indicator",
    "pearson_with",
    "require_transformer",
    "saliency_at",
    "unit_activations",
]
