"""DICOM TLS against a second Orthanc with certificates made by the test (openssl)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lumbarview.services.pacs.dimse import echo
from lumbarview.services.pacs.servers import LocalAE, PacsError, Server
from tests.net.conftest import _need_orthanc
from tests.net.orthanc import Orthanc

pytestmark = pytest.mark.orthanc


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=lumbarview test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)
    for name, extra in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"), ("client", "")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=folder)
        ext = folder / f"{name}.ext"
        ext.write_text(extra + "\n" if extra else "basicConstraints=CA:FALSE\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-out", f"{name}.pem", "-extfile", ext.name, cwd=folder)
    return {n: folder / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


@pytest.fixture(scope="module")
def tls_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Orthanc, dict[str, Path]]]:
    _need_orthanc()
    if shutil.which("openssl") is None:
        pytest.skip(reason="openssl is needed to make the test certificates")
    folder = tmp_path_factory.mktemp("orthanc-tls")
    certs = _make_certificates(folder)
    server = Orthanc(folder / "pacs", 11999, tls={
        "DicomTlsEnabled": True, "DicomTlsCertificate": str(certs["server.pem"]),
        "DicomTlsPrivateKey": str(certs["server.key"]), "DicomTlsTrustedCertificates": str(certs["ca.pem"]),
        "DicomTlsRemoteCertificateRequired": True})
    server.start()
    try:
        yield server, certs
    finally:
        server.stop()


def test_tls_echo_with_a_client_certificate(tls_orthanc: tuple[Orthanc, dict[str, Path]]) -> None:
    pacs, certs = tls_orthanc
    server = Server("tls", pacs.aet, "127.0.0.1", pacs.dicom_port, tls_ca=str(certs["ca.pem"]),
                    tls_cert=str(certs["client.pem"]), tls_key=str(certs["client.key"]), timeout_s=5)
    assert echo(server, LocalAE()) < 5


def test_a_plain_association_to_the_tls_port_fails_cleanly(tls_orthanc: tuple[Orthanc, dict[str, Path]]) -> None:
    pacs, _ = tls_orthanc
    with pytest.raises(PacsError) as info:
        echo(Server("tls", pacs.aet, "127.0.0.1", pacs.dicom_port, timeout_s=3), LocalAE())
    assert "\n" not in str(info.value)


def test_tls_without_the_required_client_certificate_fails(tls_orthanc: tuple[Orthanc, dict[str, Path]]) -> None:
    pacs, certs = tls_orthanc
    with pytest.raises(PacsError):
        echo(Server("tls", pacs.aet, "127.0.0.1", pacs.dicom_port, tls_ca=str(certs["ca.pem"]), timeout_s=3),
             LocalAE())


def test_a_server_certificate_from_another_ca_is_refused(tls_orthanc: tuple[Orthanc, dict[str, Path]],
                                                         tmp_path: Path) -> None:
    pacs, certs = tls_orthanc
    other = _make_certificates(tmp_path)
    with pytest.raises(PacsError):
        echo(Server("tls", pacs.aet, "127.0.0.1", pacs.dicom_port, tls_ca=str(other["ca.pem"]),
                    tls_cert=str(certs["client.pem"]), tls_key=str(certs["client.key"]), timeout_s=3), LocalAE())


def test_a_missing_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PacsError, match="TLS set-up failed"):
        echo(Server("tls", "X", "127.0.0.1", 1, tls_ca=str(tmp_path / "nope.pem")), LocalAE())
