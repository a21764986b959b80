"""Sample corpora shipped with charlm-tui; `manifest.json` lists them (see engine.data.samples)."""
