"""Dock panels: issues, tags, layers, annotations, summary, browser."""
