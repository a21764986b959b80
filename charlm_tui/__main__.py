"""`python -m charlm_tui` is `charlm-tui` (torchrun starts it this way)."""

from charlm_tui.cli import main

if __name__ == "__main__":
    main()
