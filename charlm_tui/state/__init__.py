"""What the UI keeps between sessions (the recent-corpora list)."""
