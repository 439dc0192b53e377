"""Durations as manifests write them: ``250ms``, ``2s``, ``1.5m``, or a bare number of seconds."""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["Duration", "decode_hook", "parse_duration"]

_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


class Duration(float):
    """Seconds, parsed from a manifest duration. A float, so arithmetic just works."""


def parse_duration(value: object) -> Duration:
    """Seconds in ``value``; ``ValueError`` with an example of the accepted forms otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}; write e.g. 500ms, 2s or 1m")
    if isinstance(value, int | float):
        if not math.isfinite(value):  # YAML's .inf and .nan are floats too
            raise ValueError(f"not a duration: {value!r}; write e.g. 500ms, 2s or 1m")
        if value < 0:
            raise ValueError(f"duration must not be negative: {value!r}")
        return Duration(value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match is not None:
            return Duration(float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    raise ValueError(f"not a duration: {value!r}; write e.g. 500ms, 2s or 1m")


def decode_hook(type_: type, value: Any) -> Any:
    """msgspec ``dec_hook`` turning manifest values into ``Duration`` fields."""
    if type_ is Duration:
        return parse_duration(value)
    raise NotImplementedError(f"no decoder for {type_!r}")
