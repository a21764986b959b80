"""Screens shown over the panes: help, the strategy comparison, the file browser."""
