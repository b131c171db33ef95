"""Evented session state (no Qt): the cursor every view observes, and each view's state."""
