"""Consistent new identities: UIDs, pseudonyms and per-patient date shifts from one secret.

Everything is an HMAC-SHA256 of the original value under a secret key: with the project key
(a file the user keeps, :func:`read_or_create_key`) two exports of the same data give the same
new UIDs, pseudonyms and date shifts, so a later export joins an earlier one; without it a
random key is drawn for the one export and forgotten. The key itself is never written anywhere
but its own file, and never logged.

* a UID becomes ``2.25.<the first 128 bits of its HMAC as a decimal integer>`` (PS3.5 B.2, a
  UUID-derived UID: at most 44 characters);
* a patient's pseudonym is ``LV`` + 12 upper-case hex digits of the HMAC of its identifier;
* a patient's date shift is a whole number of days back, from 365 to 3,649, the same for every
  date of the patient, so intervals between studies are kept exactly.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from lumbarview.core.errors import LumbarviewError
from lumbarview.core.fs import atomic_write_bytes

KEY_BYTES = 32
_MIN_KEY_CHARS = 32
_KEY_HEADER = "# lumbarview project key: keep this file secret and keep it (the same key gives the same identities)\n"


class KeyFileError(LumbarviewError):
    """The project key file cannot be used."""


def read_or_create_key(path: str | Path) -> tuple[bytes, bool]:
    """The secret in ``path`` (its last non-comment line), or a new one written there when the
    file does not exist (created only, never overwritten; readable by the owner alone).
    Returns ``(key, created)``.

    Raises
    ------
    KeyFileError
        When the file cannot be read or holds no usable secret (it is left as it is).
    """
    path = Path(path)
    if not path.exists():
        key_text = secrets.token_hex(KEY_BYTES)
        try:
            atomic_write_bytes(path, (_KEY_HEADER + key_text + "\n").encode("ascii"))
            os.chmod(path, 0o600)
        except OSError as exc:
            raise KeyFileError(f"{path}: the new key file cannot be written ({exc.strerror}); "
                               "choose a folder you can write to") from exc
        return key_text.encode("ascii"), True
    try:
        if path.stat().st_size > 4096:
            raise KeyFileError(f"{path}: this is not a lumbarview key file (larger than 4 KiB); "
                               "give the key file an export wrote, or a new file name")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: the key file cannot be read ({exc}); check its permissions") from exc
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines or len(lines[-1]) < _MIN_KEY_CHARS:
        raise KeyFileError(f"{path}: the key file holds no secret of at least {_MIN_KEY_CHARS} characters; "
                           "give the key file an export wrote, or a new file name to create one")
    return lines[-1].encode("utf-8"), False


class Identities:
    """New identities under one key (a random one when ``key`` is None)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(KEY_BYTES)
        self.keyed = key is not None
        self._uids: dict[str, str] = {}

    def __repr__(self) -> str:  # never show the key
        return f"Identities(keyed={self.keyed}, uids={len(self._uids)})"

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self._key, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """The new UID for ``original`` (one to one: the same original always gives the same UID)."""
        original = original.strip().rstrip("\x00")
        new = self._uids.get(original)
        if new is None:
            new = "2.25." + str(int.from_bytes(self._digest("uid", original)[:16], "big"))
            self._uids[original] = new
        return new

    @property
    def uid_map(self) -> dict[str, str]:
        return dict(self._uids)

    def pseudonym(self, patient: str) -> str:
        return "LV" + self._digest("patient", patient.strip()).hex()[:12].upper()

    def name(self, kind: str, value: str, length: int = 10) -> str:
        """A stable short token for a file or folder name (``kind`` separates uses)."""
        return self._digest(kind, value).hex()[:length]

    def date_shift_days(self, patient: str) -> int:
        return 365 + int.from_bytes(self._digest("date", patient.strip())[:4], "big") % 3285

    def shift_date(self, patient: str, value: str) -> str:
        """A DA value (``YYYYMMDD``) moved back by the patient's shift; an empty or unreadable
        value becomes empty (nothing of it is kept)."""
        text = value.strip()
        try:
            day = dt.date(int(text[0:4]), int(text[4:6]), int(text[6:8])) if len(text) == 8 else None
        except ValueError:
            day = None
        if day is None:
            return ""
        shifted = day - dt.timedelta(days=self.date_shift_days(patient))
        return f"{shifted.year:04d}{shifted.month:02d}{shifted.day:02d}"

    def shift_datetime(self, patient: str, value: str) -> str:
        """A DT value with its date part shifted (the time of day and offset kept); empty when unreadable."""
        text = value.strip()
        day = self.shift_date(patient, text[:8])
        return day + text[8:] if day else ""
