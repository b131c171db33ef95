"""The frozen app's entry point (PyInstaller runs this script; see lumbarview.spec).

``freeze_support`` must come first: the DICOM decoder pool and ``measure --jobs`` start children
by "spawn", which in a frozen app re-runs this executable; PyInstaller's multiprocessing hook
turns that into the child's work instead of a second command line.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from lumbarview.cli import main

    sys.exit(main())
