"""lumbarview.core."""
