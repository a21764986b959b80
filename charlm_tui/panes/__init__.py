"""The three panes of the app (corpus, training, generation); the training form belongs to the training pane."""
