"""lumbarview.io."""
