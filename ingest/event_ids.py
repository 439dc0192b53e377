"""An event's id: a fresh UUID, or the client's ``Idempotency-Key`` so that every copy of an
event (a client's retry, a dispatcher's redelivery) carries the same id and receivers can drop
the duplicates. Pure.

With API keys, the id is scoped by the key's name (``<name>:<key>``): idempotency keys are the
clients' own words, and one key holder reusing another's (by chance or on purpose) must not
make receivers drop the other's event as a duplicate. Neither a key name nor an
``Idempotency-Key`` holds a colon, so a scoped id is never the id of another name's event, nor
of an unscoped one, nor of a batch item (``<key>:<index>``).
"""

from __future__ import annotations

import uuid

__all__ = ["event_id"]


def event_id(idempotency_key: str | None, *, key_name: str | None, index: int | None = None) -> str:
    """The id of an event sent with ``idempotency_key`` (if any) under the API key named
    ``key_name`` (``None`` when ingest runs without keys); ``index``: its place in a batch."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    scoped = idempotency_key if key_name is None else f"{key_name}:{idempotency_key}"
    return scoped if index is None else f"{scoped}:{index}"
