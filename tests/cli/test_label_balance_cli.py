"""The label balance on the command line: `corpus info --labels` states it with each label's
share, a conditional run says it at the start and keeps it in its config, and
`--label-balance` is checked (through the real entry point, `charlm_tui.cli.main`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import assert_user_error, cli_json


@pytest.fixture
def styles(tmp_path: Path) -> Path:
    folder = tmp_path / "styles"
    folder.mkdir()
    (folder / "big.txt").write_text("abc def gh.\n" * 300, encoding="utf-8")  # 3,600 chars
    (folder / "small.txt").write_text("hag bed fed.\n" * 30, encoding="utf-8")  # 390 chars
    return folder


def test_corpus_info_states_the_balance_and_each_share(cli_main, styles: Path) -> None:
    info = cli_json(cli_main("corpus", "info", styles, "--labels", "--json"))
    assert info["label_balance"] == 0.5
    assert info["labels"] == [{"name": "big", "chars": 3600}, {"name": "small", "chars": 390}]
    assert info["label_natural_shares"]["small"] == pytest.approx(390 / 3990)
    share = 390**0.5 / (390**0.5 + 3600**0.5)
    assert info["label_train_shares"] == pytest.approx({"small": share, "big": 1 - share})
    assert "p ~ size^0.5" in info["label_balance_note"]
    proc = cli_main("corpus", "info", styles, "--labels")
    said = " ".join(proc.stderr.split())  # Rich wraps long lines
    assert proc.returncode == 0
    assert "p ~ size^0.5" in said and "small 25% (natural 10%)" in said


def test_a_conditional_run_says_its_balance_at_the_start(cli_main, styles, tmp_path) -> None:
    out = tmp_path / "run"
    proc = cli_main(
        "train", "--corpus", styles, "--out", out, "--conditional", "--preset", "tiny",
        "--max-steps", "5", "--label-balance", "0", "--json",
    )  # fmt: skip
    result = cli_json(proc)
    assert result["train"]["label_balance"] == 0.0
    said = " ".join(proc.stderr.split())  # Rich wraps long lines
    assert "p ~ size^0 (uniform: every label as often)" in said
    # natural: each label's count of whole training windows (3,240 - 32 and 351 - 32)
    assert "big 50% (natural 91%), small 50% (natural 9%)" in said
    assert "val loss still weights each label by its size" in said
    state = json.loads((out / "last" / "state.json").read_text())
    assert state["train"]["label_balance"] == 0.0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--conditional", "--label-balance", "1.5"], "label_balance"),
        (["--label-balance", "0"], "--conditional"),
    ],
)
def test_bad_label_balance_is_one_line_and_exit_2(
    cli_main, styles, tmp_path, args, fragment
) -> None:
    out = tmp_path / "run"
    proc = cli_main("train", "--corpus", styles, "--out", out, "--preset", "tiny", *args)
    assert_user_error(proc, fragment)
    assert not out.exists()
