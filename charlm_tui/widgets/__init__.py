"""Reusable widgets the panes and screens are built from (knobs, metrics, next-char panel, token view)."""
