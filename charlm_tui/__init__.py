"""charlm-tui: the Textual front end and Typer CLI over the `engine` package.

Nothing here imports torch at module import time, so the TUI paints at once.
"""

__version__ = "0.1.0"
