"""A run on disk: its directory and the one process that owns it, checkpoints and their
tags, the metrics log, TensorBoard files, and the list of saved runs."""
