"""PACS servers: named in the user's configuration, or written out on the command line.

A server is either DIMSE (``dicom://AET@HOST:PORT``: AE title, host, port, optional TLS) or
DICOMweb (an ``http(s)://`` root, optional credentials read from a file). The configuration
is ``servers.json`` in the user config folder (``$LUMBARVIEW_CONFIG_DIR`` or the platform's)::

    {"servers": {"pacs": {"aet": "PACS", "host": "10.0.0.5", "port": 104,
                          "tls_ca": "/etc/ssl/pacs-ca.pem", "tls_cert": "me.pem", "tls_key": "me.key"},
                 "web": {"url": "https://pacs.example/dicom-web", "auth_file": "~/.config/lumbarview/web.auth"}},
     "local": {"aet": "LUMBARVIEW", "host": "0.0.0.0", "port": 11113}}

``local`` is lumbarview's own AE title and the Storage SCP it starts for a C-MOVE (the PACS
must know that AE title, host and port). An auth file holds one line, ``basic USER:PASSWORD``
or ``bearer TOKEN``; credentials never come from the command line and are never printed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lumbarview.core.errors import LumbarviewError

__all__ = ["DEFAULT_AET", "Credentials", "LocalAE", "PacsError", "Server", "config_path", "load_config",
           "read_credentials", "resolve_server", "validate_aet", "validate_host", "validate_port"]

DEFAULT_AET = "LUMBARVIEW"
DEFAULT_MOVE_PORT = 11113


class PacsError(LumbarviewError):
    """A network operation failed; the message is one line naming the problem."""


def validate_aet(aet: str, what: str = "AE title") -> str:
    """An AE title: 1 to 16 characters of the default character repertoire, no backslash or
    control character, not only spaces (PS3.5 6.2, AE)."""
    if not 0 < len(aet) <= 16 or not aet.strip():
        raise PacsError(f"the {what} {aet!r} must be 1 to 16 characters, not only spaces")
    if any(c == "\\" or not (" " <= c <= "~") for c in aet):
        raise PacsError(f"the {what} {aet!r} may hold printable ASCII only, without backslash")
    return aet.strip()


_HOSTNAME = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
                       r"[A-Za-z0-9])?)*\.?")


def validate_host(host: str) -> str:
    """A host name or an IPv4/IPv6 address."""
    text = host.strip("[]")
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(text):
        raise PacsError(f"{host!r} is not a host name or an IP address")
    return text


def validate_port(port: Any) -> int:
    try:
        value = int(port)
    except (TypeError, ValueError):
        raise PacsError(f"the port {port!r} is not a number") from None
    if isinstance(port, bool) or not 1 <= value <= 65535 or str(port).strip() != str(value):
        raise PacsError(f"the port {port!r} must be a whole number from 1 to 65535")
    return value


@dataclass(frozen=True)
class LocalAE:
    """lumbarview's own AE: its title, and where its Storage SCP listens during a C-MOVE."""

    aet: str = DEFAULT_AET
    host: str = "0.0.0.0"
    port: int = DEFAULT_MOVE_PORT

    def describe(self) -> str:
        return f"AE title {self.aet}, port {self.port}" + ("" if self.host in ("0.0.0.0", "::") else f" on {self.host}")


@dataclass(frozen=True)
class Server:
    """One PACS. ``url`` set: DICOMweb; otherwise DIMSE at ``aet@host:port``."""

    name: str
    aet: str = ""
    host: str = ""
    port: int = 0
    url: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    auth_file: str = ""
    timeout_s: float = 30.0

    @property
    def is_web(self) -> bool:
        return bool(self.url)

    def describe(self) -> str:
        if self.is_web:
            return self.url
        return f"{self.aet}@{self.host}:{self.port}" + (" (TLS)" if self.tls_ca else "")


@dataclass(frozen=True)
class Credentials:
    scheme: str  # "basic" | "bearer"
    user: str = ""
    secret: str = ""

    def __repr__(self) -> str:  # never show the secret
        return f"Credentials({self.scheme!r}, user={self.user!r})"


def config_path() -> Path:
    folder = os.environ.get("LUMBARVIEW_CONFIG_DIR")
    if not folder:
        import platformdirs

        folder = platformdirs.user_config_dir("lumbarview", appauthor=False)
    return Path(folder) / "servers.json"


def load_config(path: Path | None = None) -> tuple[dict[str, Server], LocalAE]:
    """The configured servers and our local AE (defaults when there is no file)."""
    path = path or config_path()
    if not path.is_file():
        return {}, LocalAE()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PacsError(f"the server configuration {path} cannot be read ({exc}); fix or move it") from None
    if not isinstance(doc, dict):
        raise PacsError(f"the server configuration {path} must hold a JSON object")
    servers: dict[str, Server] = {}
    for name, entry in (doc.get("servers") or {}).items():
        if not isinstance(entry, dict):
            raise PacsError(f"{path}: server {name!r} must be an object")
        try:
            servers[name] = _server_from(name, entry)
        except PacsError as exc:
            raise PacsError(f"{path}: server {name!r}: {exc}") from None
    local = doc.get("local") or {}
    if not isinstance(local, dict):
        raise PacsError(f"{path}: 'local' must be an object")
    try:
        me = LocalAE(validate_aet(str(local.get("aet", DEFAULT_AET)), "local AE title"),
                     validate_host(str(local.get("host", "0.0.0.0"))),
                     validate_port(local.get("port", DEFAULT_MOVE_PORT)))
    except PacsError as exc:
        raise PacsError(f"{path}: local: {exc}") from None
    return servers, me


_KEYS = {"aet", "host", "port", "url", "tls_ca", "tls_cert", "tls_key", "auth_file", "timeout_s"}


def _server_from(name: str, entry: dict[str, Any]) -> Server:
    unknown = set(entry) - _KEYS
    if unknown:
        raise PacsError(f"unknown keys {sorted(unknown)} (known: {sorted(_KEYS)})")
    if entry.get("url"):
        url = str(entry["url"])
        if not re.match(r"https?://", url):
            raise PacsError(f"the DICOMweb root {url!r} must start with http:// or https://")
        return Server(name, url=url.rstrip("/"), auth_file=str(entry.get("auth_file", "")),
                      tls_ca=str(entry.get("tls_ca", "")), timeout_s=float(entry.get("timeout_s", 30.0)))
    for key in ("aet", "host", "port"):
        if key not in entry:
            raise PacsError(f"needs 'aet', 'host' and 'port' (or 'url' for DICOMweb); '{key}' is missing")
    return Server(name, validate_aet(str(entry["aet"])), validate_host(str(entry["host"])),
                  validate_port(entry["port"]), tls_ca=str(entry.get("tls_ca", "")),
                  tls_cert=str(entry.get("tls_cert", "")), tls_key=str(entry.get("tls_key", "")),
                  timeout_s=float(entry.get("timeout_s", 30.0)))


_DICOM_URL = re.compile(r"dicom://(?P<aet>[^@]+)@(?P<host>\[[^\]]+\]|[^:/]+):(?P<port>[^/]+)/?")


def resolve_server(spec: str, tls_ca: str = "", config: Path | None = None) -> Server:
    """A configured name, ``dicom://AET@HOST:PORT`` or an ``http(s)://`` DICOMweb root."""
    if spec.startswith("dicom://"):
        m = _DICOM_URL.fullmatch(spec)
        if m is None:
            raise PacsError(f"{spec!r} is not dicom://AET@HOST:PORT")
        return Server(spec, validate_aet(m["aet"]), validate_host(m["host"]), validate_port(m["port"]),
                      tls_ca=tls_ca)
    if re.match(r"https?://", spec):
        return Server(spec, url=spec.rstrip("/"), tls_ca=tls_ca)
    servers, _ = load_config(config)
    if spec not in servers:
        known = ", ".join(sorted(servers)) or "none"
        raise PacsError(f"no server named {spec!r} in {config or config_path()} (configured: {known}); or give "
                        "dicom://AET@HOST:PORT or an http(s):// DICOMweb root")
    server = servers[spec]
    return replace(server, tls_ca=tls_ca) if tls_ca else server


def read_credentials(path: str) -> Credentials:
    """``basic USER:PASSWORD`` or ``bearer TOKEN`` from the first line of ``path``."""
    try:
        line = Path(os.path.expanduser(path)).read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError, UnicodeDecodeError):
        raise PacsError(f"the auth file {path} cannot be read or is empty") from None
    scheme, _, value = line.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic" and ":" in value:
        user, _, password = value.strip().partition(":")
        return Credentials("basic", user, password)
    if scheme == "bearer" and value.strip():
        return Credentials("bearer", secret=value.strip())
    raise PacsError(f"the auth file {path} must hold 'basic USER:PASSWORD' or 'bearer TOKEN' on its first line")
