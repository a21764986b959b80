"""Key-press-to-screen latency of the TUI while the engine trains at full speed.

The app runs headless (App.run_test) with the engine in its own process training
the CPU default preset. For each of ~50 presses of T / t (temperature up and
down) we time from posting the key to the end of the first compositor refresh
that painted the temperature widget with the new value, and print JSON with
p50 / p95 / max. Then a few generations from the latest weights give the time
from Enter to the first generated character on screen.

Usage: python bench/tui_latency.py [--presses 50] [--warmup-s 8] [--preset cpu]
Target: p95 < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(_percentile(values, 0.50) * 1000, 2),
        "p95_ms": round(_percentile(values, 0.95) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2),
    }


async def measure(args: argparse.Namespace) -> dict:
    from textual.screen import Screen

    from charlm_tui.app import CharLMApp
    from charlm_tui.panes.generation import GenerationPane
    from charlm_tui.panes.training import TrainingPane
    from charlm_tui.widgets.knobs import KnobBar
    from charlm_tui.widgets.token_view import TokenView

    painted: list[tuple[float, str]] = []  # (time, temperature shown) per compositor refresh
    shown = {"temperature": ""}
    original_render = KnobBar.render
    original_refresh = Screen._compositor_refresh

    def render(self: KnobBar):
        shown["temperature"] = f"{self.values['temperature']:.2f}"
        return original_render(self)

    appended: list[float] = []  # when generated characters reached the output widget
    original_append = TokenView.append

    def append(self: TokenView, *args, **kwargs) -> None:
        original_append(self, *args, **kwargs)
        appended.append(time.perf_counter())

    def compositor_refresh(self: Screen) -> None:
        original_refresh(self)
        now = time.perf_counter()
        painted.append((now, shown["temperature"]))
        if appended and not chars_painted:
            chars_painted.append(now)

    chars_painted: list[float] = []  # first paint after the first characters arrived
    KnobBar.render = render  # type: ignore[method-assign]
    TokenView.append = append  # type: ignore[method-assign]
    Screen._compositor_refresh = compositor_refresh  # type: ignore[method-assign]

    app = CharLMApp(corpus=args.corpus, engine_mode="process")
    latencies: list[float] = []
    first_char: list[float] = []
    async with app.run_test(size=(120, 36)) as pilot:

        async def wait(condition, timeout: float, what: str) -> None:
            deadline = time.monotonic() + timeout
            while not condition():
                if time.monotonic() > deadline:
                    raise SystemExit(f"timed out waiting for {what}")
                await pilot.pause(0.02)

        corpus = app.query_one("#corpus-pane")
        await wait(lambda: bool(corpus.loaded_name), 60, "the corpus")
        await pilot.press("f3")
        app.query_one("#preset").value = args.preset
        await pilot.pause(0.2)
        app.query_one("#f-max_steps").value = ""
        await pilot.press("f5")
        training = app.query_one(TrainingPane)
        await wait(lambda: training.state == "training", 120, "training to start")
        await asyncio.sleep(args.warmup_s)  # let it reach full speed
        steps_before = app.query_one("#m-step").value

        await pilot.press("f4")
        await pilot.pause(0.2)
        view = app.query_one(TokenView)
        view.focus()
        await pilot.pause(0.2)
        generation = app.query_one(GenerationPane)
        app.query_one(KnobBar).auto = False  # measure the knob alone, no regeneration
        for index in range(args.presses):
            key = "T" if index % 2 == 0 else "t"
            expected = generation.values["temperature"] + (0.1 if key == "T" else -0.1)
            target = f"{expected:.2f}"
            painted.clear()
            started = time.perf_counter()
            await pilot.press(key)
            await wait(lambda target=target: any(v == target for _, v in painted), 10, "the paint")
            done = next(t for t, v in painted if v == target)
            latencies.append(done - started)
            await asyncio.sleep(random.uniform(0.05, 0.15))

        # Enter -> first generated character painted, from the latest weights.
        for _ in range(args.generations):
            appended.clear()
            chars_painted.clear()
            started = time.perf_counter()
            await pilot.press("enter")
            await wait(lambda: bool(chars_painted), 30, "first character")
            first_char.append(chars_painted[0] - started)
            await wait(lambda: not generation.generating, 60, "the generation to end")
            await asyncio.sleep(0.3)

        speed = app.query_one("#m-speed").value
        steps_after = app.query_one("#m-step").value
        await pilot.press("f3", "f7")
        await wait(lambda: training.state in ("stopped", "done", "failed"), 120, "stop")

    knob = _summary(latencies)
    return {
        "bench": "tui_latency",
        "engine_mode": "process",
        "corpus": args.corpus,
        "preset": args.preset,
        "cpus": os.cpu_count(),
        "knob_press_to_paint": knob,
        "enter_to_first_char": _summary(first_char),
        "training": {
            "steps_at_start": steps_before,
            "steps_at_end": steps_after,
            "chars_per_s": speed,
        },
        "target_p95_ms": 100,
        "meets_target": bool(latencies) and knob["p95_ms"] < 100,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=50)
    parser.add_argument("--generations", type=int, default=5)
    parser.add_argument("--warmup-s", type=float, default=8.0)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--corpus", default="verse")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="charlm-bench-") as data:
        os.environ.setdefault("CHARLM_DATA_DIR", data)
        result = asyncio.run(measure(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
