"""The CLI for labels, conditions and blends: results, and every bad input as one line, exit 2,
nothing written (through the real entry point, `charlm_tui.cli.main`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data.corpus import Vocab
from engine.runs.checkpoint import save_checkpoint
from tests.helpers import assert_user_error, cli_json, run_cli, tiny_model

CHARS = sorted(set("abcdefgh .\n"))


def _save(run_dir: Path, chars: list[str], labels: list[str], seed: int) -> Path:
    model = tiny_model("lstm", vocab_size=len(chars), seed=seed, num_labels=len(labels))
    if labels:
        with torch.no_grad():
            model.label.table.weight.normal_(0.0, 1.0)
    counts = np.arange(1, len(chars) + 1).tolist()
    meta = {"step": 1, "char_counts": counts, "corpus": {"name": "x"}, "labels": labels}
    save_checkpoint(run_dir, model=model, vocab=Vocab(chars), meta=meta)
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    corpus = root / "styles"
    corpus.mkdir()
    (corpus / "code.txt").write_text("abc def gh.\n" * 40, encoding="utf-8")
    (corpus / "verse.txt").write_text("hag bed fed.\n" * 40, encoding="utf-8")
    return {
        "cond": _save(root / "cond", CHARS, ["code", "verse"], 0),
        "plain": _save(root / "plain", CHARS, [], 1),
        "other": _save(root / "other", sorted(set("abcxyz .\n")), [], 2),
        "corpus": corpus,
    }


def _json(cli_main, *args: object) -> dict:
    proc = cli_main(*args, "--json")
    return cli_json(proc)


def test_generate_with_a_condition_and_guidance(cli_main, runs) -> None:
    base = ("generate", "--checkpoint", runs["cond"], "--length", "60", "--seed", "3")
    # The same seed, so the same uniform draws: only the label can make the texts differ.
    # (Greedy would not do: this random little model's argmax is "b" under both labels.)
    sampled = ("--strategy", "sample", "--temperature", "1")
    code_text = _json(cli_main, *base, "--condition", "code", *sampled)
    verse_text = _json(cli_main, *base, "--condition", "verse", *sampled)
    assert code_text["condition"] == {"code": 1.0}
    assert code_text["samples"] != verse_text["samples"]
    code = _json(cli_main, *base, "--condition", "code", "--strategy", "greedy")
    mixed = _json(cli_main, *base, "--condition", "code=1,verse=3", "--guidance", "1.5")
    assert mixed["condition"] == {"code": 0.25, "verse": 0.75} and mixed["guidance"] == 1.5
    streamed = cli_main(*base, "--condition", "code", "--strategy", "greedy", "--stream")
    assert streamed.returncode == 0 and streamed.stdout.strip() == code["samples"][0].strip()


def test_compare_by_label_puts_labels_side_by_side(cli_main, runs) -> None:
    payload = _json(
        cli_main, "compare", "--checkpoint", runs["cond"], "--by-label", "--length", "20",
        "--num-samples", "2", "--seed", "1",
    )  # fmt: skip
    assert [row["strategy"] for row in payload["rows"]] == ["none", "code", "verse"]


def test_blend_generate_and_eval_with_fitted_weights(cli_main, runs) -> None:
    blend = ("--checkpoint", runs["plain"], "--checkpoint", runs["other"])
    out = _json(cli_main, "generate", *blend, "--weights", "0.7,0.3", "--length", "20")
    assert out["weights"] == pytest.approx([0.7, 0.3]) and out["blend"] == "mixture"
    assert set("".join(out["samples"])) <= set(CHARS) | set("xyz")  # the merged vocabulary
    corpus = runs["corpus"] / "code.txt"
    fitted = _json(cli_main, "eval", *blend, "--corpus", corpus, "--fit-weights")
    assert sum(fitted["fitted_weights"]) == pytest.approx(1.0)
    # "other" never saw most of these characters (infinite loss): EM turns to "plain".
    assert fitted["member_losses"][1] is None and fitted["fitted_weights"][0] > 0.9
    product = _json(cli_main, "eval", *blend, "--corpus", corpus, "--blend", "product")
    assert product["blend"] == "product" and np.isfinite(product["loss"])


def test_eval_reports_each_label_with_and_without_its_label(cli_main, runs) -> None:
    payload = _json(cli_main, "eval", "--checkpoint", runs["cond"], "--corpus", runs["corpus"])
    assert payload["labels"] == ["code", "verse"]
    for row in payload["per_label"].values():
        assert np.isfinite(row["loss"]) and np.isfinite(row["loss_no_label"])
    assert payload["loss_no_label"] != payload["loss"]
    info = _json(cli_main, "corpus", "info", runs["corpus"], "--labels")
    assert info["labels"] == [{"name": "code", "chars": 480}, {"name": "verse", "chars": 520}]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("generate", "--checkpoint", "{plain}", "--condition", "code"), ("without labels",)),
        (("generate", "--checkpoint", "{cond}", "--guidance", "2"), ("needs --condition",)),
        (("generate", "--checkpoint", "{cond}", "--condition", "poetry"), ("code, verse",)),
        (("generate", "--checkpoint", "{cond}", "--condition", "code", "--guidance", "nan"),
         ("guidance",)),
        (("generate", "--checkpoint", "{plain}", "--checkpoint", "{other}", "--weights", "1"),
         ("1 values for 2",)),
        (("generate", "--checkpoint", "{plain}", "--checkpoint", "{other}", "--weights", "-1,2"),
         (">= 0",)),
        (("generate", "--checkpoint", "{plain}", "--checkpoint", "{other}", "--weights", "0,0"),
         ("all zero",)),
        (("generate", "--checkpoint", "{plain}", "--checkpoint", "{other}", "--weights",
          "nan,1"), (">= 0",)),
        (("generate", "--checkpoint", "{plain}", "--checkpoint", "{plain}/nope"),
         ("does not exist",)),
        (("generate", "--checkpoint", "{plain}", "--checkpoint", "{other}", "--blend", "sum"),
         ("mixture, product",)),
        (("generate", "--checkpoint", "{plain}", "--checkpoint", "{other}", "--prompt", "q"),
         ("does not know",)),
        (("compare", "--checkpoint", "{plain}", "--by-label"), ("--conditional",)),
        (("eval", "--checkpoint", "{plain}", "--corpus", "{corpus}", "--fit-weights"),
         ("two or more",)),
        (("eval", "--checkpoint", "{plain}", "--checkpoint", "{other}", "--corpus", "{corpus}",
          "--weights", "1,2,3"), ("3 values for 2",)),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(cli_main, runs, args, fragments) -> None:
    filled = [a.format(**runs) for a in args]
    proc = cli_main(*filled, "--json")
    assert proc.stdout == ""  # nothing half-written
    assert_user_error(proc, *fragments)


def test_train_conditional_on_a_corpus_without_labels_writes_nothing(
    cli_main, tmp_path, runs
) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("just some text\n" * 50, encoding="utf-8")
    out = tmp_path / "run"
    args = ("--out", out, "--preset", "tiny", "--max-steps", "2", "--json", "--conditional")
    proc = cli_main("train", "--corpus", plain, *args)
    assert_user_error(proc, "labelled corpus")
    assert proc.stdout == "" and not out.exists()
    one_label = tmp_path / "one"
    one_label.mkdir()
    (one_label / "only.txt").write_text("text " * 100, encoding="utf-8")
    proc = run_cli("corpus", "info", one_label, "--labels", "--json")  # a real process too
    assert_user_error(proc, "at least two labels")


def test_train_conditional_learns_labels_end_to_end(cli_main, tmp_path, runs) -> None:
    out = tmp_path / "run"
    proc = cli_main(
        "train", "--corpus", runs["corpus"], "--out", out, "--conditional", "--preset", "tiny",
        "--max-steps", "30", "--json",
    )  # fmt: skip
    result = cli_json(proc)
    assert result["labels"] == ["code", "verse"] and set(result["label_val_loss"]) == {
        "code",
        "verse",
    }
    state = json.loads((out / "last" / "state.json").read_text())
    assert state["labels"] == ["code", "verse"] and state["model"]["num_labels"] == 2
    assert state["train"]["batching"] == "random" and state["train"]["label_dropout"] == 0.1
