"""Cutting 2D slices out of stacks (numpy only), and the slice cache."""
