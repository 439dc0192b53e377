"""The API key file as ingest currently knows it: read at start-up, read again on SIGHUP or
when the file changes, so keys are added and revoked without a restart.

A file that cannot be read or parsed at start-up stops ingest (``SettingsError``). Later, a bad
edit keeps the keys that were in force and logs an ERROR line; the next good version of the
file is picked up. Logs name keys, never hold them (the file holds none).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ingest.api_keys import ApiKeys, KeyFileError, parse_key_file
from ingest.exceptions import SettingsError

__all__ = ["KeyRing"]

log = logging.getLogger("ingest")

_MAX_FILE_BYTES = 1024 * 1024
_CHECK_EVERY = 1.0
"""Seconds between looks at the file's modification time (a stat, on a request's path)."""


class KeyRing:
    """The keys of one key file, kept current."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._checked = float("-inf")
        try:
            self.keys = self._read()
        except (OSError, KeyFileError) as exc:
            raise SettingsError(f"api keys file not usable: {_describe(exc, path)}") from None
        log.info("api keys loaded path=%s keys=%d names=%s", path, len(self.keys), self._names())

    def current(self, now: float) -> ApiKeys:
        """The keys in force at ``now`` (monotonic), re-read first if the file changed."""
        if now - self._checked >= _CHECK_EVERY:
            self._checked = now
            try:
                changed = _identity(self.path) != self._seen
            except OSError:
                changed = True  # reload() says what is wrong with it
            if changed:
                self.reload()
        return self.keys

    def reload(self) -> None:
        """Read the file again (on SIGHUP, or when it changed); keep the old keys if it is bad."""
        try:
            keys = self._read()
        except (OSError, KeyFileError) as exc:
            log.error(
                "api keys file not reloaded; keeping the %d keys in force path=%s error=%s",
                len(self.keys),
                self.path,
                _describe(exc, self.path),
            )
            return
        self.keys = keys
        log.info("api keys reloaded path=%s keys=%d names=%s", self.path, len(keys), self._names())

    def _read(self) -> ApiKeys:
        identity = _identity(self.path)
        with self.path.open("rb") as file:
            data = file.read(_MAX_FILE_BYTES + 1)
        if len(data) > _MAX_FILE_BYTES:
            raise KeyFileError(f"{self.path}: larger than {_MAX_FILE_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise KeyFileError(f"{self.path}: not UTF-8 text") from None
        keys = parse_key_file(text, str(self.path))
        self._seen = identity
        return keys

    def _names(self) -> str:
        return ",".join(sorted(self.keys.names_by_digest.values())) or "-"


def _identity(path: Path) -> tuple[int, int, int]:
    status = os.stat(path)
    return status.st_ino, status.st_mtime_ns, status.st_size


def _describe(exc: BaseException, path: Path) -> str:
    if isinstance(exc, OSError):
        return f"{path}: {exc.strerror or type(exc).__name__}"
    return str(exc)
