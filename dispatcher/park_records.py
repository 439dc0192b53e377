"""The records of a destination's park topic: parked events, markers and replay requests.

One park topic per destination (``<topic>.park.<destination>``), with the events topic's
partition count; a record goes to the **same partition number** its event came from (set
explicitly, never left to a partitioner), keyed by user. Only the owner of an events partition
writes parked events and markers to that park partition, so the partition's order is the
owner's order. Kinds (header ``park-kind``):

* ``event``: a parked event: the original key, value and headers, plus ``park-source-offset``
  and ``park-reason``.
* ``release``: ``park-up-to``: every parked record of this user at or below that park offset
  was delivered; the user is no longer parked.
* ``retry``: ``park-retries`` failed automatic retries so far, next one at ``park-next-at-ms``.
* ``replay-request`` (written by ``dispatcher replay``): ``park-request``, and the user as key
  (empty: every parked user of the partition).
* ``replay-result`` / ``replay-done`` (written by the owner): what a request achieved, per user
  (``park-replayed``, ``park-released``, ``park-error``) and once per partition.

Decoding is total: a record that is not one of these comes back as ``Unknown`` and is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventlog.record import Headers

__all__ = [
    "ParkRead",
    "ReadEvent",
    "ReadRelease",
    "ReadReplayDone",
    "ReadReplayRequest",
    "ReadReplayResult",
    "ReadRetry",
    "Unknown",
    "event_headers",
    "park_topic",
    "parse",
    "release_headers",
    "replay_done_headers",
    "replay_request_headers",
    "replay_result_headers",
    "retry_headers",
]

PREFIX = "park-"
KIND = f"{PREFIX}kind"
_OWN = (
    KIND,
    f"{PREFIX}source-offset",
    f"{PREFIX}reason",
    f"{PREFIX}at-ms",
)


def park_topic(topic: str, destination: str) -> str:
    """The park topic of ``destination`` reading ``topic``."""
    return f"{topic}.park.{destination}"


def event_headers(original: Headers, *, source_offset: int, reason: str, now_ms: int) -> Headers:
    own: Headers = [
        (KIND, b"event"),
        (f"{PREFIX}source-offset", str(source_offset).encode()),
        (f"{PREFIX}reason", reason.encode()[:500]),
        (f"{PREFIX}at-ms", str(now_ms).encode()),
    ]
    return [*(h for h in original if not h[0].startswith(PREFIX)), *own]


def release_headers(up_to: int) -> Headers:
    return [(KIND, b"release"), (f"{PREFIX}up-to", str(up_to).encode())]


def retry_headers(retries: int, next_at_ms: int, error: str) -> Headers:
    return [
        (KIND, b"retry"),
        (f"{PREFIX}retries", str(retries).encode()),
        (f"{PREFIX}next-at-ms", str(next_at_ms).encode()),
        (f"{PREFIX}error", error.encode()[:500]),
    ]


def replay_request_headers(request: str) -> Headers:
    return [(KIND, b"replay-request"), (f"{PREFIX}request", request.encode())]


def replay_result_headers(request: str, *, replayed: int, released: bool, error: str) -> Headers:
    return [
        (KIND, b"replay-result"),
        (f"{PREFIX}request", request.encode()),
        (f"{PREFIX}replayed", str(replayed).encode()),
        (f"{PREFIX}released", b"true" if released else b"false"),
        (f"{PREFIX}error", error.encode()[:500]),
    ]


def replay_done_headers(request: str, users: int) -> Headers:
    return [
        (KIND, b"replay-done"),
        (f"{PREFIX}request", request.encode()),
        (f"{PREFIX}users", str(users).encode()),
    ]


@dataclass(frozen=True, slots=True)
class ReadEvent:
    user: str
    source_offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    """The original headers, without the park's own."""
    reason: str
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class ReadRelease:
    user: str
    up_to: int


@dataclass(frozen=True, slots=True)
class ReadRetry:
    user: str
    retries: int
    next_at_ms: int


@dataclass(frozen=True, slots=True)
class ReadReplayRequest:
    request: str
    user: str | None


@dataclass(frozen=True, slots=True)
class ReadReplayResult:
    request: str
    user: str
    replayed: int
    released: bool
    error: str


@dataclass(frozen=True, slots=True)
class ReadReplayDone:
    request: str
    users: int


@dataclass(frozen=True, slots=True)
class Unknown:
    why: str


ParkRead = (
    ReadEvent | ReadRelease | ReadRetry | ReadReplayRequest | ReadReplayResult | ReadReplayDone
    | Unknown
)  # fmt: skip


def parse(  # noqa: PLR0911 - one return per kind
    key: bytes | None, value: bytes | None, headers: Headers | None, timestamp_ms: int = 0
) -> ParkRead:
    """What a record read from a park topic is; never raises."""
    found: dict[str, str] = {}
    for name, raw in headers or ():
        if name.startswith(PREFIX) and raw is not None:
            found[name] = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    user = (key or b"").decode("utf-8", "replace")
    kind = found.get(KIND)
    try:
        if kind == "event":
            original = [h for h in headers or () if h[0] not in _OWN]
            return ReadEvent(
                user, _int(found, "source-offset"), key, value, original,
                found.get(f"{PREFIX}reason", ""), timestamp_ms,
            )  # fmt: skip
        if kind == "release":
            return ReadRelease(user, _int(found, "up-to"))
        if kind == "retry":
            return ReadRetry(user, _int(found, "retries"), _int(found, "next-at-ms"))
        if kind == "replay-request":
            return ReadReplayRequest(found[f"{PREFIX}request"], user or None)
        if kind == "replay-result":
            return ReadReplayResult(
                found[f"{PREFIX}request"], user, _int(found, "replayed"),
                found.get(f"{PREFIX}released") == "true", found.get(f"{PREFIX}error", ""),
            )  # fmt: skip
        if kind == "replay-done":
            return ReadReplayDone(found[f"{PREFIX}request"], _int(found, "users"))
    except (KeyError, ValueError) as exc:
        return Unknown(f"malformed {kind} record: {exc}")
    return Unknown(f"unknown park-kind {kind!r}")


def _int(found: dict[str, str], name: str) -> int:
    text = found[f"{PREFIX}{name}"]
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise ValueError(f"{PREFIX}{name} is not a whole number")
    return int(text)
