"""The session's Orthanc: started once for tests/net, stopped at the end.

Skipped, with the reason, only where the Orthanc binary is missing and this is not CI; on CI
(``CI=true``) a missing Orthanc fails the tests instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.net.orthanc import Orthanc, free_port, orthanc_binary


def _need_orthanc() -> None:
    if orthanc_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("Orthanc is not installed on CI: packaging/dev.sh must install the Debian packages "
                        "orthanc and orthanc-dicomweb")
        pytest.skip(reason="Orthanc is not installed (bash packaging/dev.sh installs orthanc and orthanc-dicomweb)")


@pytest.fixture(scope="session")
def move_port() -> int:
    """The port of the Storage SCP lumbarview starts for a C-MOVE (Orthanc knows it)."""
    return free_port()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory, move_port: int) -> Iterator[Orthanc]:
    _need_orthanc()
    server = Orthanc(Path(tmp_path_factory.mktemp("orthanc")), move_port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
