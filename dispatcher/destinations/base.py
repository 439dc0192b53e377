"""What every destination type provides: a ``Destination`` and the options it reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from eventlog.record import Event

__all__ = ["Destination", "DestinationType"]


class Destination(Protocol):
    """Somewhere events go. One instance per manifest destination, made inside the event loop.

    ``send`` returns once the destination has the event, or raises
    ``RetryableDeliveryError`` / ``PermanentDeliveryError``. The caller bounds each attempt with
    the destination's timeout (by cancelling ``send``) and does the retrying.
    """

    async def send(self, event: Event) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DestinationType:
    """A destination type as the registry knows it."""

    options: type[msgspec.Struct]
    """The type's manifest keys (besides the common ones), as a frozen struct."""
    create: Callable[[str, Any, int], Destination]
    """``create(name, options, concurrency)`` -> a destination, made inside the running event
    loop; ``concurrency`` is how many events the dispatcher may have in flight to it."""
