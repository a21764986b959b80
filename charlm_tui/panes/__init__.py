"""The three panes of the app (corpus, training, generation) and their small widgets."""
