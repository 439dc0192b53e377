"""Request-body rules, without a server or a broker."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ingest.exceptions import InvalidRequest, UnsupportedMediaType
from ingest.validation import (
    USER_ID_PATTERN,
    EventIn,
    check_content_type,
    parse_batch,
    parse_event,
)


def _event(value: Any, *, max_user_id_length: int = 256) -> EventIn:
    return parse_event(json.dumps(value).encode(), max_user_id_length=max_user_id_length)


def _batch(value: Any, **limits: int) -> list[EventIn]:
    defaults = {"max_user_id_length": 256, "max_event_bytes": 1000, "max_batch_events": 5}
    return parse_batch(json.dumps(value).encode(), **{**defaults, **limits})


def _fields(exc: pytest.ExceptionInfo[InvalidRequest]) -> list[tuple[int | None, str | None]]:
    return [(e.index, e.field) for e in exc.value.errors]


def test_a_valid_event_keeps_its_strings_exactly() -> None:
    payload = 'line 1\n"quoted" é 😀 {"json": [1, 2]}'
    assert _event({"user_id": "ü-42", "payload": payload}) == EventIn("ü-42", payload)
    assert _event({"user_id": "u", "payload": ""}) == EventIn("u", "")


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        ({"payload": "p"}, "user_id", "is required"),
        ({"user_id": "", "payload": "p"}, "user_id", "must not be empty or only whitespace"),
        (
            {"user_id": " \u3000 ", "payload": "p"},
            "user_id",
            "must not be empty or only whitespace",
        ),
        ({"user_id": 42, "payload": "p"}, "user_id", "must be a string, got number"),
        ({"user_id": None, "payload": "p"}, "user_id", "must be a string, got null"),
        ({"user_id": ["u"], "payload": "p"}, "user_id", "must be a string, got array"),
        ({"user_id": "u" * 11, "payload": "p"}, "user_id", "must be at most 10 characters, got 11"),
        ({"user_id": "u"}, "payload", "is required"),
        ({"user_id": "u", "payload": {"a": 1}}, "payload", "must be a string, got object"),
        ({"user_id": "u", "payload": True}, "payload", "must be a string, got boolean"),
        ({"user_id": "u", "payload": "p", "extra": 1}, "extra", "is not a field of an event"),
    ],
)
def test_each_bad_field_is_named(body: Any, field: str, detail: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        _event(body, max_user_id_length=10)
    assert exc.value.kind == "invalid-event"
    [error] = exc.value.errors
    assert error.field == field
    assert error.pointer == f"#/{field}"
    assert error.detail.startswith(detail)
    assert field in str(exc.value)


def test_every_bad_field_is_reported_not_just_the_first() -> None:
    with pytest.raises(InvalidRequest) as exc:
        _event({"user_id": 1, "payload": 2, "b": 0, "a": 0})
    assert _fields(exc) == [(None, "user_id"), (None, "payload"), (None, "a"), (None, "b")]


@pytest.mark.parametrize("body", [[], "event", 7, None])
def test_an_event_must_be_an_object(body: Any) -> None:
    with pytest.raises(InvalidRequest) as exc:
        _event(body)
    assert exc.value.kind == "invalid-event"
    assert exc.value.errors[0].field is None
    assert exc.value.errors[0].pointer == "#"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"user_id": "u", "payload": "p"} trailing',
        b'{"user_id": "u", "payload": "p",}',
        b"\xff\xfe",
        b'{"user_id": "\xc3\x28", "payload": "p"}',  # not UTF-8
        b'{"user_id": "\\ud800", "payload": "p"}',  # lone surrogate: not encodable as a key
        b'{"user_id": 1e999, "payload": "p"}',
        b"NaN",
    ],
)
def test_malformed_json_is_its_own_problem(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as exc:
        parse_event(raw, max_user_id_length=256)
    assert exc.value.kind == "malformed-json"
    assert exc.value.detail.startswith("the body is not valid JSON")


def test_a_wrong_type_before_a_syntax_error_is_still_malformed_json() -> None:
    # The typed decoder stops at the type error; the body must not pass as "invalid event".
    with pytest.raises(InvalidRequest) as exc:
        parse_event(b'{"user_id": 1, "payload": ', max_user_id_length=256)
    assert exc.value.kind == "malformed-json"


@pytest.mark.parametrize("media_type", ["application/json", "APPLICATION/JSON"])
def test_json_is_the_accepted_media_type(media_type: str) -> None:
    check_content_type(media_type)


@pytest.mark.parametrize("media_type", ["", "text/plain", "application/x-www-form-urlencoded"])
def test_other_media_types_are_refused(media_type: str) -> None:
    with pytest.raises(UnsupportedMediaType, match="application/json"):
        check_content_type(media_type)


def test_a_valid_batch_keeps_its_order() -> None:
    items = [{"user_id": f"u{i % 2}", "payload": str(i)} for i in range(5)]
    assert _batch(items) == [EventIn(i["user_id"], i["payload"]) for i in items]


def test_every_bad_item_of_a_batch_is_listed_by_index() -> None:
    items = [
        {"user_id": "ok", "payload": "p"},
        {"user_id": "", "payload": "p"},
        {"user_id": "ok", "payload": "p"},
        "not an event",
        {"user_id": "ok", "payload": 5, "x": 1},
    ]
    with pytest.raises(InvalidRequest) as exc:
        _batch(items)
    assert exc.value.kind == "invalid-batch"
    assert _fields(exc) == [(1, "user_id"), (3, None), (4, "payload"), (4, "x")]
    assert [e.pointer for e in exc.value.errors] == ["#/1/user_id", "#/3", "#/4/payload", "#/4/x"]
    assert exc.value.detail == "3 of 5 events are invalid; nothing was written"


def test_batch_items_are_checked_even_when_their_types_are_right() -> None:
    # The fast typed path must apply the same rules as the detailed one.
    with pytest.raises(InvalidRequest) as exc:
        _batch([{"user_id": "ok", "payload": "p"}, {"user_id": " ", "payload": "p"}])
    assert _fields(exc) == [(1, "user_id")]


def test_a_batch_item_payload_is_bounded_in_utf8_bytes() -> None:
    fits = "é" * 500  # 1000 bytes
    too_big = "é" * 501
    assert _batch([{"user_id": "u", "payload": fits}], max_event_bytes=1000)
    with pytest.raises(InvalidRequest) as exc:
        _batch([{"user_id": "u", "payload": fits}, {"user_id": "u", "payload": too_big}])
    [error] = exc.value.errors
    assert (error.index, error.field) == (1, "payload")
    assert "at most 1000 bytes in UTF-8, got 1002" in error.detail


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"user_id": "u", "payload": "p"}, "a batch must be a JSON array of events, got object"),
        ([], "a batch must contain at least one event"),
        ([{"user_id": "u", "payload": "p"}] * 6, "a batch may contain at most 5 events, got 6"),
    ],
)
def test_the_batch_as_a_whole_must_be_an_array_of_bounded_length(body: Any, detail: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        _batch(body)
    assert exc.value.kind == "invalid-batch"
    assert exc.value.detail == detail
    assert exc.value.errors[0].pointer == "#"


def test_too_many_items_are_refused_before_looking_at_them() -> None:
    with pytest.raises(InvalidRequest, match="at most 5 events, got 7"):
        _batch([1, 2, 3, 4, 5, 6, 7])


def test_a_malformed_batch_is_malformed_json() -> None:
    with pytest.raises(InvalidRequest) as exc:
        parse_batch(b"[{]", max_user_id_length=9, max_event_bytes=9, max_batch_events=9)
    assert exc.value.kind == "malformed-json"


DEEP = 5000
"""Far deeper than any decoder's recursion limit; an event is one object of two strings."""


@pytest.mark.parametrize(
    "body",
    [
        b"[" * DEEP + b"]" * DEEP,
        b"[" * DEEP,  # unbalanced
        b'{"user_id": "u", "payload": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        b'{"user_id": "u", "payload": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}",
    ],
    ids=["nested arrays", "unbalanced", "nested payload", "nested objects"],
)
def test_deeply_nested_json_is_refused_without_recursing(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as exc:
        parse_event(body, max_user_id_length=256)
    assert exc.value.kind == "malformed-json"
    assert "nested too deeply" in exc.value.detail
    with pytest.raises(InvalidRequest) as batch_exc:
        parse_batch(
            b"[" + body + b"]", max_user_id_length=256, max_event_bytes=9, max_batch_events=9
        )
    assert batch_exc.value.kind == "malformed-json"


@pytest.mark.parametrize(
    "user_id",
    ["\u0000", "u\u0000", "\u200b", "user\u200b", "a\nb", "\x7f", "\u202eevil", "\ufeffu",
     "a\u2028b"],
    ids=["NUL", "NUL inside", "zero-width space", "zero-width inside", "newline", "DEL",
         "right-to-left override", "byte order mark", "line separator"],
)  # fmt: skip
def test_user_ids_with_control_or_invisible_characters_are_refused(user_id: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        _event({"user_id": user_id, "payload": "p"})
    [error] = exc.value.errors
    assert error.field == "user_id"
    assert "control or invisible" in error.detail
    assert "U+" in error.detail  # names the character, which a reader cannot see


SHOW_NOTHING = {
    "tag character": "\U000e0041",
    "tags": "\U000e0041\U000e0042",
    "Hangul filler": "\u3164",
    "Hangul choseong filler": "\u115f",
    "halfwidth Hangul filler": "\uffa0",
    "Braille pattern blank": "\u2800",
    "variation selector-16": "\ufe0f",
    "combining grapheme joiner": "\u034f",
    "fillers and spaces": " \u3164 \u2800 ",
}
"""Ids of characters that show nothing: not controls or format characters (most of them),
so the rule against those alone let them through."""


@pytest.mark.parametrize("user_id", SHOW_NOTHING.values(), ids=SHOW_NOTHING.keys())
def test_user_ids_that_show_nothing_are_refused(user_id: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        _event({"user_id": user_id, "payload": "p"})
    [error] = exc.value.errors
    assert error.field == "user_id"


def test_a_format_character_beyond_the_basic_plane_is_refused_like_one_within() -> None:
    with pytest.raises(InvalidRequest) as exc:
        _event({"user_id": "u\U000e0041", "payload": "p"})
    [error] = exc.value.errors
    assert "control or invisible" in error.detail
    assert "U+E0041 at index 1" in error.detail


@pytest.mark.parametrize(
    "user_id",
    ["ü-42", "用户", "a b", " padded ", "😀", "x" * 256, "\u2764\ufe0f", "\u2801", "\u1100\u1160",
     "a\u2800b"],
)  # fmt: skip
def test_user_ids_of_visible_characters_are_accepted(user_id: str) -> None:
    assert _event({"user_id": user_id, "payload": "p"}).user_id == user_id


def test_the_documented_pattern_is_the_rule_the_server_applies() -> None:
    pattern = re.compile(USER_ID_PATTERN)
    for user_id in [
        "u", "a b", "用户", "\u0000", "\u200b", " ", "\u3000", "a\u200bb", "", "😀",
        "\u2764\ufe0f", "u\U000e0041", *SHOW_NOTHING.values(),
    ]:  # fmt: skip
        try:
            _event({"user_id": user_id, "payload": "p"})
            accepted = True
        except InvalidRequest:
            accepted = False
        assert accepted == bool(pattern.fullmatch(user_id)), repr(user_id)
