"""Destination types by the name manifests use for them.

Adding a type: one module with an options struct and a class with ``async send(event)`` and
``async close()`` (see ``base.Destination``), plus its line in ``TYPES``.
"""

from __future__ import annotations

from dispatcher.destinations import http, mock
from dispatcher.destinations.base import Destination, DestinationType

__all__ = ["TYPES", "Destination", "DestinationType"]

TYPES: dict[str, DestinationType] = {
    "mock": mock.TYPE,
    "http": http.TYPE,
}
