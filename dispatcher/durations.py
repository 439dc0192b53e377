"""Durations as manifests write them: ``250ms``, ``2s``, ``1.5m``, ``2h``, ``7d``, or a bare
number of seconds.

Only ASCII digits count (``str.isdigit`` and ``\\d`` also take Arabic-Indic or fullwidth
digits) and nothing may stand between the number and its unit, so ``2 s`` is refused rather
than guessed at. A duration is at most ``MAX_DURATION`` (a year): anything longer is a typo,
and asyncio's timers overflow on the astronomically large numbers a string of digits can spell.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["MAX_DURATION", "Duration", "decode_hook", "format_duration", "parse_duration"]

MAX_DURATION = 365 * 86_400.0
"""The longest duration accepted, in seconds (365 days)."""

_PATTERN = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)?", re.ASCII)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, None: 1.0}
_EXAMPLES = "write e.g. 500ms, 2s, 1m, 2h or 7d"


class Duration(float):
    """Seconds, parsed from a manifest duration. A float, so arithmetic just works."""


def parse_duration(value: object) -> Duration:
    """Seconds in ``value``; ``ValueError`` with an example of the accepted forms otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}; {_EXAMPLES}")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer of hundreds of digits
            seconds = math.inf if value > 0 else -math.inf
    elif isinstance(value, str) and (match := _PATTERN.fullmatch(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"not a duration: {value!r}; {_EXAMPLES}")
    if math.isnan(seconds):  # YAML's .nan
        raise ValueError(f"not a duration: {value!r}; {_EXAMPLES}")
    if seconds < 0:
        raise ValueError(f"duration must not be negative: {value!r}")
    if seconds > MAX_DURATION:  # also YAML's .inf
        raise ValueError(f"duration {value!r} is longer than a year; {_EXAMPLES}")
    return Duration(seconds)


def format_duration(seconds: float) -> str:
    """``seconds`` the way a manifest would write it, roughly (``90s`` -> ``1.5m``)."""
    for unit, size in (("d", 86_400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds * 1000:.3g}ms"


def decode_hook(type_: type, value: Any) -> Any:
    """msgspec ``dec_hook`` turning manifest values into ``Duration`` fields."""
    if type_ is Duration:
        return parse_duration(value)
    raise NotImplementedError(f"no decoder for {type_!r}")
