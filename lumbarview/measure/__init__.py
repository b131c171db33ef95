"""Measurements: pure functions on arrays and geometry, results with units (no Qt)."""
