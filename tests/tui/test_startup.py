"""The UI side starts fast: importing the app must not import torch."""

from __future__ import annotations

import subprocess
import sys


def test_app_import_does_not_load_torch() -> None:
    code = (
        "import sys, time; t = time.perf_counter(); import charlm_tui.app, charlm_tui.cli; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "print(time.perf_counter() - t)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < 2.0


def test_engine_side_never_imports_textual_or_rich() -> None:
    code = (
        "import sys; import engine.worker, engine.worker.protocol; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'torch')]; "
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
