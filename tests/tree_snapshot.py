"""A snapshot of a whole folder tree (every file's bytes, every folder): a test of "nothing is
written into the dataset" compares one taken before with one taken after."""

from __future__ import annotations

import hashlib
from pathlib import Path


def tree_snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with the SHA-1 of its bytes (``folder`` for a folder)."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "folder"
            for p in sorted(Path(root).rglob("*"))}
