"""The branch tree: forks keep the parent's text up to the fork, moving is undo/redo, export."""

from __future__ import annotations

import json
import math

import pytest

from charlm_tui.state.branches import FORMAT, BranchTree
from engine.decoding.params import SamplingParams

TOPS = [("a", 0.5), ("b", 0.3), ("c", 0.2)]


def _root(tree: BranchTree, text: str = "hello world", prompt: str = "P: ") -> int:
    branch = tree.new_root(prompt, SamplingParams(seed=1, temperature=0.8))
    tree.append(branch.id, text, [0.9] * len(text), [0.8] * len(text), [TOPS] * len(text))
    return branch.id


def test_a_fork_keeps_the_text_before_it_and_the_chosen_char() -> None:
    tree = BranchTree()
    root = _root(tree)
    fork = tree.fork(root, 4, "b", SamplingParams(seed=2))
    assert fork.text == "hellb"
    assert fork.prompt == "P: "
    assert fork.model_probs[:4] == [0.8] * 4 and fork.model_probs[4] == 0.3
    assert math.isnan(fork.probs[4])  # picked by hand, not sampled
    assert fork.own_start == 5
    tree.append(fork.id, "xyz", [0.5] * 3, [0.5] * 3, [TOPS] * 3)
    assert tree.get().text == "hellbxyz"
    assert tree.get(root).text == "hello world"  # the parent is untouched
    assert tree.current == fork.id
    with pytest.raises(IndexError):
        tree.fork(root, 99, "a", SamplingParams())


def test_siblings_parent_and_back_down_are_undo_and_redo() -> None:
    tree = BranchTree()
    root = _root(tree)
    first = tree.fork(root, 2, "a", SamplingParams()).id
    second = tree.fork(root, 6, "c", SamplingParams()).id
    third = tree.fork(root, 6, "b", SamplingParams()).id
    assert tree.where() == "branch 3/3 at char 7"
    assert tree.to_sibling(1) is None  # already last
    assert tree.to_sibling(-1).id == second
    assert tree.where() == "branch 2/3 at char 7"
    assert tree.to_sibling(-1).id == first
    assert tree.to_sibling(-1) is None
    assert tree.to_parent().id == root
    assert tree.where() == "generation 1/1"
    assert tree.to_parent() is None
    assert tree.to_child().id == first  # the child last visited
    tree.append(first, "xyz", [0.5] * 3, [0.5] * 3, [TOPS] * 3)
    nested = tree.fork(first, 4, "b", SamplingParams()).id
    assert tree.get().text == "heaxb"
    assert tree.where() == "branch 1/1 at char 5 (depth 2)"
    tree.to_parent()
    tree.to_parent()
    assert tree.to_child().id == first and tree.to_child().id == nested
    assert third in tree.siblings(first)


def test_a_fork_in_inherited_text_hangs_from_the_ancestor_that_made_it() -> None:
    tree = BranchTree()
    root = _root(tree)
    child = tree.fork(root, 6, "a", SamplingParams())
    tree.append(child.id, "zzzz", [0.5] * 4, [0.5] * 4, [TOPS] * 4)
    same_place = tree.fork(child.id, 6, "b", SamplingParams())  # replaces the child's own choice
    earlier = tree.fork(child.id, 2, "c", SamplingParams())  # inside the text it inherited
    later = tree.fork(child.id, 8, "c", SamplingParams())  # inside its own text
    assert same_place.parent == root and earlier.parent == root
    assert later.parent == child.id
    assert same_place.text == "hello b" and earlier.text == "hec" and later.text == "hello azc"


def test_roots_are_siblings() -> None:
    tree = BranchTree()
    one = _root(tree, "one")
    two = _root(tree, "two")
    assert tree.where() == "generation 2/2"
    assert tree.to_sibling(-1).id == one
    assert tree.to_sibling(1).id == two


def test_export_uses_the_generate_json_fields() -> None:
    tree = BranchTree()
    root = _root(tree)
    tree.fork(root, 3, "c", SamplingParams(seed=7, temperature=1.0))
    data = json.loads(json.dumps(tree.as_json()))  # plain JSON, no NaN from the probs
    assert data["format"] == FORMAT
    assert data["current"] == 2
    records = {r["id"]: r for r in data["branches"]}
    assert records[1] == {
        "id": 1,
        "parent": None,
        "fork_at": 0,
        "prompt": "P: ",
        "params": {
            "strategy": "sample",
            "temperature": 0.8,
            "top_k": None,
            "top_p": None,
            "min_p": None,
            "repetition_penalty": 1.0,
            "repetition_window": 64,
            "beam_width": 5,
            "length_penalty": 1.0,
            "length": 200,
            "seed": 1,
            "stop": [],
        },
        "samples": ["hello world"],
        "chars": 11,
        "stopped": False,
    }
    assert records[2]["parent"] == 1 and records[2]["fork_at"] == 3
    assert records[2]["samples"] == ["helc"] and records[2]["params"]["seed"] == 7
    # the export's params rebuild the branch's parameters
    assert SamplingParams(**records[1]["params"]) == tree.get(1).params
