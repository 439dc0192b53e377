"""Log lines for operators: one line per meaningful event, ``key=value`` fields."""

from __future__ import annotations

import logging

__all__ = ["configure_logging"]

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Send the project's logs to stderr at ``level``; librdkafka's own chatter stays quiet."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    # aiohttp and uvicorn access logs would print one line per request.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
