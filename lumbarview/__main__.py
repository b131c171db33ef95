"""``python -m lumbarview``."""

from __future__ import annotations

import sys

from lumbarview.cli import main

sys.exit(main())
