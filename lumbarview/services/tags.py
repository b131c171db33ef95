"""Use case: the DICOM tags of one file, for the tag browser (the UI does not import io)."""

from __future__ import annotations

from lumbarview.io.dicom.tags import read_tags

__all__ = ["read_tags"]
