"""Where the compare view's chrF reference comes from: the held-out split only."""

from __future__ import annotations

from engine.data.corpus import load_corpus
from engine.decoding.references import (
    MIN_LOOKUP_CHARS,
    held_out_prompt,
    held_out_text,
    reference_after,
)

HELD_OUT = "First line here.\nSecond line, longer than the first.\nThird line.\n" * 3


def test_a_typed_prompt_found_in_the_split_gets_the_text_after_it() -> None:
    found = reference_after(HELD_OUT, "Second line,", 10)
    assert found is not None
    assert found.prompt == "Second line," and found.text == " longer th"
    assert HELD_OUT[found.offset :].startswith("Second line, longer th")


def test_the_first_occurrence_with_room_for_the_reference_wins() -> None:
    text = "abcdefghij tail" + "abcdefghij"
    found = reference_after(text, "abcdefghij", 5)
    assert found is not None and found.offset == 0 and found.text == " tail"
    late = reference_after("xx" + "abcdefghij" + "12", "abcdefghij", 5)
    assert late is None  # too close to the end: no full reference


def test_short_or_absent_prompts_have_no_reference() -> None:
    assert reference_after(HELD_OUT, "line"[: MIN_LOOKUP_CHARS - 1], 5) is None
    assert reference_after(HELD_OUT, "not in the text at all", 5) is None


def test_a_cut_prompt_is_seeded_starts_a_line_and_is_followed_by_its_reference() -> None:
    first = held_out_prompt(HELD_OUT, 12, seed=3, prompt_chars=10)
    assert first == held_out_prompt(HELD_OUT, 12, seed=3, prompt_chars=10)
    assert first is not None and len(first.prompt) == 10 and len(first.text) == 12
    assert HELD_OUT[first.offset - 1] == "\n" or first.offset == 0
    assert HELD_OUT[first.offset :].startswith(first.prompt + first.text)
    offsets = {held_out_prompt(HELD_OUT, 12, seed=s, prompt_chars=10).offset for s in range(20)}
    assert len(offsets) > 1  # a new seed moves the prompt
    assert held_out_prompt("short", 12, seed=0, prompt_chars=10) is None


def test_held_out_text_is_the_tail_of_the_corpus(tmp_path) -> None:
    path = tmp_path / "c.txt"
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    path.write_text(text, encoding="utf-8")
    corpus = load_corpus(str(path))
    assert held_out_text(corpus, 0.1) == text[900:]
