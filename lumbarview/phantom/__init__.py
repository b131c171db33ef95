"""lumbarview.phantom."""
