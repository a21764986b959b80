"""bench/corpora.py's own parts: the corpora it builds and its independent classifier."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "corpora.py"


@pytest.fixture(scope="module")
def corpora():
    spec = importlib.util.spec_from_file_location("bench_corpora", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_names_are_distinct_real_looking_and_the_same_every_time(corpora) -> None:
    names = corpora.names_like(3000, seed=0)
    assert names == corpora.names_like(3000, seed=0)
    assert len(set(names)) == 3000
    assert all(3 <= len(n) <= 12 and n.isalpha() and n.islower() for n in names)
    assert len(set(names) - set(corpora.SEED_NAMES)) > 2500  # mostly new names
    assert not any(c * 3 in n for n in names for c in "aeiou")  # no 'aaa': learned pairs


def test_the_labelled_folder_is_built_at_run_time_largest_ten_times_smallest(
    corpora, tmp_path: Path
) -> None:
    args = argparse.Namespace(names=3000, seed=1, code_kb=30, label_kb=40)
    built = corpora.build(tmp_path, args)
    sizes = {p.stem: len(p.read_text(encoding="utf-8")) for p in built["styles"].glob("*.txt")}
    assert sizes == {"shakespeare": 40_000, "code": 20_000, "names": 10_000, "verse": 4_000}
    assert "def " in (built["styles"] / "code.txt").read_text(encoding="utf-8")
    if corpora.SHAKESPEARE is not None:  # read in place, never copied
        assert built["shakespeare"] == corpora.SHAKESPEARE
    assert all(tmp_path in p.parents for k, p in built.items() if k != "shakespeare")


def test_the_classifier_tells_styles_apart_on_held_out_text(corpora) -> None:
    names = "\n".join(corpora.names_like(4000, seed=2))
    code = corpora.stdlib_code(40_000)
    verse = (BENCH.parent.parent / "sample_corpora" / "verse.txt").read_text(encoding="utf-8")
    texts = {"names": names, "code": code, "verse": verse}
    classifier = corpora.NgramClassifier({k: v[:18_000] for k, v in texts.items()})
    for name, text in texts.items():
        tail = text[20_000:24_000]
        pieces = [tail[i : i + 200] for i in range(0, 4000, 200)]
        right = sum(classifier.classify(p) == name for p in pieces)
        assert right >= 18, (name, right)
