"""What a run trains: its hyperparameters, the named presets, and a width fitted to the
time budget and the corpus."""
