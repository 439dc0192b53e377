"""API keys: who may write events, as a file of ``name:sha256-hex`` lines.

The file never holds a key, only its SHA-256: keys are 32 random bytes (``new_key``), so a
plain hash cannot be reversed or guessed, and a stolen file lets no one in. A request's
``Authorization: Bearer <key>`` is hashed and compared with every line in constant time, so
neither the answer's timing nor its content tells a client how close a guess came. Only the
key's name is ever logged, counted or written to Kafka.

Pure: parsing, making and matching keys; reading the file is ``key_ring``'s.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ApiKeys", "KeyFileError", "key_line", "new_key", "parse_key_file"]

KEY_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
KEY_NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-'"
_HEX = re.compile(r"[0-9a-f]{64}", re.ASCII)
_BEARER = re.compile(r"Bearer +(\S+) *", re.ASCII | re.IGNORECASE)


class KeyFileError(ValueError):
    """A line of a key file is not ``name:sha256-hex``; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ApiKeys:
    """The keys of one key file: SHA-256 digest -> the key's name."""

    names_by_digest: Mapping[bytes, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names_by_digest)

    def authenticate(self, authorization: str | None) -> str | None:
        """The name of the key in an ``Authorization`` header value, or ``None``."""
        match = _BEARER.fullmatch(authorization or "")
        presented = hashlib.sha256(match[1].encode() if match else b"").digest()
        found = None
        # Every digest is compared, even after a match: the time taken says nothing.
        for digest, name in self.names_by_digest.items():
            if hmac.compare_digest(digest, presented) and match:
                found = name
        return found


def parse_key_file(text: str, source: str) -> ApiKeys:
    """The keys in a key file's ``text``; ``KeyFileError`` names ``source`` and the line.

    Blank lines and ``#`` comments are skipped; a name may appear once.
    """
    names: dict[bytes, str] = {}
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, digest = line.partition(":")
        where = f"{source}: line {number}"
        if not colon or not _HEX.fullmatch(digest.lower()):
            # The line is not quoted: someone may have pasted a key itself.
            raise KeyFileError(f"{where}: expected name:sha256-hex (64 hex digits)")
        if not KEY_NAME.fullmatch(name):
            raise KeyFileError(f"{where}: key name must be {KEY_NAME_RULE}")
        if name in seen:
            raise KeyFileError(f"{where}: key name {name!r} appears twice")
        seen.add(name)
        names[bytes.fromhex(digest)] = name
    return ApiKeys(names)


def new_key() -> str:
    """A fresh key: 32 random bytes, URL-safe base64 (what clients send as the bearer token)."""
    return secrets.token_urlsafe(32)


def key_line(name: str, key: str) -> str:
    """The key file line for ``key`` under ``name`` (its digest, never the key)."""
    if not KEY_NAME.fullmatch(name):
        raise KeyFileError(f"key name must be {KEY_NAME_RULE}, got {name!r}")
    return f"{name}:{hashlib.sha256(key.encode()).hexdigest()}"
