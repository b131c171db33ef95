"""lumbarview: a desktop viewer for lumbar spine MRI with measurement tools."""

__version__ = "0.1.0"
