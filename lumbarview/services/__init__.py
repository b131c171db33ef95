"""lumbarview.services."""
