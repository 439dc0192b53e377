"""Manifest durations: units up to days, ASCII digits only, nothing between number and unit."""

from __future__ import annotations

import pytest

from dispatcher.durations import MAX_DURATION, format_duration, parse_duration


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("250ms", 0.25),
        ("2s", 2.0),
        ("1.5m", 90.0),
        ("2h", 7200.0),
        ("7d", 604_800.0),
        ("3", 3.0),
        (7, 7.0),
        (0.5, 0.5),
        ("365d", MAX_DURATION),
    ],
)
def test_accepted_durations(written: object, seconds: float) -> None:
    assert parse_duration(written) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "written",
    [
        "2 s",  # a space inside: refused, not guessed at
        " 2s",
        "2s ",
        "\u0663s",  # ARABIC-INDIC DIGIT THREE
        "\uff13s",  # FULLWIDTH DIGIT THREE
        "\u00b2s",  # SUPERSCRIPT TWO
        "1,5s",
        "1e3s",
        "366d",
        pytest.param("1" + "0" * 400 + "s", id="400-digits-s"),  # float() makes it inf
        pytest.param(10**400, id="400-digit-int"),  # float() raises OverflowError
        float("inf"),
        float("nan"),
        -1,
        "-1s",
        "soon",
        "ms",
        True,
        None,
    ],
)
def test_refused_durations_raise_value_error(written: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(written)


@pytest.mark.parametrize(
    ("seconds", "written"), [(0.25, "250ms"), (90, "1.5m"), (7200, "2h"), (63_360, "17.6h")]
)
def test_format_duration(seconds: float, written: str) -> None:
    assert format_duration(seconds) == written
