"""Standard Webhooks signatures: how a receiver tells our requests from anyone else's.

Each request carries ``webhook-id`` (the event id: the same on every retry and redelivery, so
a receiver can dedupe), ``webhook-timestamp`` (seconds, of this attempt) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``, one
space-separated entry per secret, so that while a secret is rotated a receiver holding either
the old or the new one verifies. See https://www.standardwebhooks.com/.

Pure: no clock of its own, no I/O. Error messages never quote a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["MIN_SECRET_BYTES", "SECRET_PREFIX", "parse_secret", "signature_headers", "signs"]

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
MIN_SECRET_BYTES = 24
"""The spec's lower bound on a secret's length: shorter keys are guessable."""


def parse_secret(text: str) -> bytes:
    """The key in a ``whsec_<base64>`` secret; ``ValueError`` (which never quotes it) if bad."""
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"is not a {SECRET_PREFIX}… secret (it must start with {SECRET_PREFIX})")
    encoded = text.removeprefix(SECRET_PREFIX)
    try:
        # validate=True: a stray character would otherwise be skipped, and the key the
        # receiver decodes would differ from ours
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"is not valid base64 after {SECRET_PREFIX} (letters, digits, '+', '/', '=' padding)"
        ) from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(
            f"holds {len(key)} bytes; a signing secret needs at least {MIN_SECRET_BYTES}"
            " random bytes (openssl rand -base64 32)"
        )
    return key


def signs(key: bytes, *, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` as sent with that id and timestamp."""
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(
    keys: Sequence[bytes], *, message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt, signed with every key."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            signs(key, message_id=message_id, timestamp=timestamp, body=body) for key in keys
        ),
    }
