"""What a valid request body is: pure functions from bytes to events or to a list of everything
wrong with them. No I/O, so every rule is tested without a server or a broker.

An event is a JSON object with exactly two members, ``user_id`` (a string of bounded length
with at least one visible character and no control or invisible format characters) and
``payload`` (any string). Unknown members are refused rather than dropped: a misspelt
``payload`` must not turn into an accepted event without its data.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from ingest.exceptions import FieldError, InvalidRequest, UnsupportedMediaType

__all__ = ["USER_ID_PATTERN", "EventIn", "check_content_type", "parse_batch", "parse_event"]

JSON_MEDIA_TYPE = "application/json"
_FIELDS = ("user_id", "payload")


def _class_of(code_points: Iterable[int]) -> str:
    # Ranges in the Basic Multilingual Plane as \uXXXX escapes, which Python's re and
    # ECMAScript (JSON Schema) read alike. Beyond it no escape is common to both (\U0001XXXX
    # is Python's, \u{1XXXX} ECMAScript's), so those characters stand as themselves: one code
    # point each to Python and to ECMAScript's Unicode mode, which JSON Schema tools use.
    parts: list[str] = []
    run: list[int] = []
    for cp in [*sorted(code_points), -2]:
        if run and cp == run[-1] + 1:
            run.append(cp)
            continue
        if run:
            first, last = _spelt(run[0]), _spelt(run[-1])
            parts.append(first if run[0] == run[-1] else f"{first}-{last}")
        run = [cp]
    return "".join(parts)


def _spelt(cp: int) -> str:
    return f"\\u{cp:04x}" if cp < 0x10000 else chr(cp)


# A user_id is the Kafka key, shown in logs and to destinations: characters a reader cannot
# see (controls, zero-width and bidirectional format characters, line separators) would make
# two ids that look alike different, or forge log lines.
_INVISIBLE = frozenset(
    # Surrogates (Cs) need no rule: JSON decoding refuses a lone one, and a pair is one
    # character beyond the Basic Multilingual Plane; nor can every regex engine spell them
    # (Rust's cannot).
    cp
    for cp in range(0x110000)
    if unicodedata.category(chr(cp)) in {"Cc", "Cf", "Zl", "Zp"}
)
_BLANK = frozenset(cp for cp in range(0x10000) if chr(cp).isspace() and cp not in _INVISIBLE)
# Characters that show nothing on their own but are no controls or format characters, so
# the rule above lets them in (a Hangul filler is a letter, a variation selector a mark):
# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt) less what _INVISIBLE has,
# and the blank Braille cell. Inside an id they may be part of what it shows (U+FE0F makes
# "❤" an emoji, U+1160 completes an old Hangul syllable); alone they show nothing.
_SHOW_NOTHING = frozenset(
    cp
    for first, last in (
        (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
        (0x2065, 0x2065), (0x2800, 0x2800), (0x3164, 0x3164), (0xFE00, 0xFE0F),
        (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0xE0000, 0xE0FFF),
    )
    for cp in range(first, last + 1)
)  # fmt: skip
USER_ID_PATTERN = (
    f"^[^{_class_of(_INVISIBLE)}]*"
    f"[^{_class_of(_INVISIBLE | _BLANK | _SHOW_NOTHING)}]"
    f"[^{_class_of(_INVISIBLE)}]*$"
)
"""What a ``user_id`` may be, as the OpenAPI document says it: at least one visible character
(not whitespace, nor one that shows nothing on its own, such as U+3164 HANGUL FILLER or U+2800
BRAILLE PATTERN BLANK), and none that is a control or invisible format character (nor a line
or paragraph separator)."""
_USER_ID = re.compile(USER_ID_PATTERN)


class EventIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One event as a client sends it."""

    user_id: str
    payload: str


# Valid bodies take the fast typed path; only a failure is decoded again, untyped, to report
# every offending field instead of msgspec's first one.
_event_decoder = msgspec.json.Decoder(EventIn)
_batch_decoder = msgspec.json.Decoder(list[EventIn])
_any_decoder = msgspec.json.Decoder()


def check_content_type(media_type: str) -> None:
    """Refuse bodies not declared as JSON (a missing ``Content-Type`` included)."""
    if media_type.lower() != JSON_MEDIA_TYPE:
        shown = media_type or "none"
        raise UnsupportedMediaType(
            f"Content-Type must be {JSON_MEDIA_TYPE}, got {shown}; send the event as JSON"
        )


def parse_event(body: bytes, *, max_user_id_length: int) -> EventIn:
    """The event in a ``PUT /events`` body, or ``InvalidRequest`` naming each bad field."""
    try:
        event = _event_decoder.decode(body)
    except msgspec.ValidationError:
        errors = tuple(_event_errors(_decode_untyped(body), max_user_id_length, None, None))
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise _malformed(exc) from exc
    else:
        errors = tuple(_user_id_errors(event.user_id, max_user_id_length, None))
        if not errors:
            return event
    raise InvalidRequest("invalid-event", _describe(errors), errors)


def parse_batch(
    body: bytes, *, max_user_id_length: int, max_event_bytes: int, max_batch_events: int
) -> list[EventIn]:
    """The events of a ``POST /events/batch`` body, or ``InvalidRequest`` listing every bad
    item by index. A batch is accepted whole or not at all."""
    try:
        events = _batch_decoder.decode(body)
    except msgspec.ValidationError:
        value = _decode_untyped(body)
        if not isinstance(value, list):
            raise _batch_shape_error(
                f"a batch must be a JSON array of events, got {_json_type(value)}"
            ) from None
        items: list[Any] = value
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise _malformed(exc) from exc
    else:
        items = events
    if not items:
        raise _batch_shape_error("a batch must contain at least one event")
    if len(items) > max_batch_events:
        raise _batch_shape_error(
            f"a batch may contain at most {max_batch_events} events, got {len(items)}"
        )
    errors: list[FieldError] = []
    for index, item in enumerate(items):
        if isinstance(item, EventIn):
            errors.extend(_user_id_errors(item.user_id, max_user_id_length, index))
            errors.extend(_payload_size_errors(item.payload, max_event_bytes, index))
        else:
            errors.extend(_event_errors(item, max_user_id_length, max_event_bytes, index))
    if errors:
        bad = len({e.index for e in errors})
        raise InvalidRequest(
            "invalid-batch",
            f"{bad} of {len(items)} events are invalid; nothing was written",
            tuple(errors),
        )
    return [i if isinstance(i, EventIn) else EventIn(i["user_id"], i["payload"]) for i in items]


def _decode_untyped(body: bytes) -> Any:
    try:
        return _any_decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise _malformed(exc) from exc
    except RecursionError:
        # The decoder recurses per level of nesting and stops at the interpreter's limit (a
        # clean RecursionError, no crash). Whether the rest would even be balanced is beside
        # the point: no event nests, so such a body is refused as unreadable.
        raise InvalidRequest(
            "malformed-json",
            "the body is not JSON ingest reads: arrays or objects nested too deeply "
            "(an event is one object of two strings)",
        ) from None


def _malformed(exc: Exception) -> InvalidRequest:
    if isinstance(exc, UnicodeDecodeError):
        reason = "it is not valid UTF-8"
    elif isinstance(exc, msgspec.ValidationError):
        reason = str(exc).lower()  # e.g. a number too large for any type
    else:
        reason = str(exc).removeprefix("JSON is malformed: ").lower()
    return InvalidRequest("malformed-json", f"the body is not valid JSON: {reason}")


def _batch_shape_error(detail: str) -> InvalidRequest:
    return InvalidRequest("invalid-batch", detail, (FieldError(detail),))


def _event_errors(
    value: Any, max_user_id_length: int, max_event_bytes: int | None, index: int | None
) -> Iterator[FieldError]:
    if not isinstance(value, dict):
        yield FieldError(
            f"an event must be a JSON object with user_id and payload, got {_json_type(value)}",
            index=index,
        )
        return
    if "user_id" not in value:
        yield FieldError("is required", "user_id", index)
    elif not isinstance(value["user_id"], str):
        yield FieldError(f"must be a string, got {_json_type(value['user_id'])}", "user_id", index)
    else:
        yield from _user_id_errors(value["user_id"], max_user_id_length, index)
    if "payload" not in value:
        yield FieldError("is required", "payload", index)
    elif not isinstance(value["payload"], str):
        yield FieldError(f"must be a string, got {_json_type(value['payload'])}", "payload", index)
    elif max_event_bytes is not None:
        yield from _payload_size_errors(value["payload"], max_event_bytes, index)
    for name in sorted(set(value) - set(_FIELDS)):
        yield FieldError("is not a field of an event (only user_id and payload are)", name, index)


def _user_id_errors(user_id: str, max_length: int, index: int | None) -> Iterator[FieldError]:
    if _USER_ID.fullmatch(user_id) is None:
        invisible = next((i for i, c in enumerate(user_id) if ord(c) in _INVISIBLE), None)
        blank = next((i for i, c in enumerate(user_id) if ord(c) in _SHOW_NOTHING), None)
        if invisible is not None:
            yield FieldError(
                f"must not contain control or invisible format characters "
                f"(U+{ord(user_id[invisible]):04X} at index {invisible})",
                "user_id",
                index,
            )
        elif blank is not None:
            yield FieldError(
                f"must have a visible character; whitespace and characters that show nothing "
                f"on their own do not count (U+{ord(user_id[blank]):04X} at index {blank})",
                "user_id",
                index,
            )
        else:
            yield FieldError("must not be empty or only whitespace", "user_id", index)
    elif len(user_id) > max_length:
        yield FieldError(
            f"must be at most {max_length} characters, got {len(user_id)}", "user_id", index
        )


def _payload_size_errors(payload: str, max_bytes: int, index: int | None) -> Iterator[FieldError]:
    # A character is at most 4 bytes in UTF-8: short payloads need no encoding to be sure.
    if len(payload) * 4 > max_bytes and (size := len(payload.encode())) > max_bytes:
        yield FieldError(
            f"must be at most {max_bytes} bytes in UTF-8, got {size}", "payload", index
        )


def _describe(errors: tuple[FieldError, ...]) -> str:
    return "; ".join(f"{e.field} {e.detail}" if e.field else e.detail for e in errors)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
