"""The charlm-tui engine: corpora, models, training, sampling and checkpoints.

Pure Python + PyTorch. This package never imports Textual or Rich so that it can
run headless, in a worker process, or inside someone else's script.
"""

__version__ = "0.1.0"
