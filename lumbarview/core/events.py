"""The one place that names the event library (psygnal), so it can be swapped."""

from __future__ import annotations

from psygnal import Signal, SignalGroup, SignalInstance, evented

__all__ = ["Signal", "SignalGroup", "SignalInstance", "evented"]
