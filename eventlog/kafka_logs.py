"""librdkafka's own log lines, through Python logging: named, in our format, rate-limited.

Without this, librdkafka prints to stderr in its own format (``%3|1764…|FAIL|rdkafka#consumer-3|
…``), naming no destination, and a down broker makes every client print a line or more a
second. ``kafka_logger("consumer", destination="bigquery")`` is a ``logging.Logger`` to pass as
a client's ``logger`` setting (``eventlog.clients`` takes it as ``logger=``); confluent-kafka
then hands it each line from the thread calling ``poll()``/``consume()``/``flush()``, and it
logs::

    librdkafka FAIL client=consumer destination=bigquery message='127.0.0.1:9092/bootstrap:
    Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)'
    suppressed=37

(one line, folded here).
The same line (numbers aside, so "after 0ms"/"after 1ms" are one line) is logged at most once
per ``interval`` per client; the next one that gets through says how many were held back.

With a ``logger`` set, librdkafka no longer prints anything itself: its lines wait in the
client's queue until something polls it. Consumers and producers are polled anyway; an
``AdminClient`` serves them only from ``admin.poll()``, which nothing else calls, so give one a
logger only if it is polled now and then (or its lines are held until it is).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

__all__ = ["REPEAT_INTERVAL", "RepeatLimiter", "kafka_logger"]

REPEAT_INTERVAL = 10.0
"""Seconds during which a client's repeats of one line are held back."""

_CONFLUENT_FORMAT = "%s [%s] %s"  # what confluent-kafka passes: facility, client name, text
_THREAD_PREFIX = re.compile(r"^\[thrd:[^\]]*\]: ")
_NUMBERS = re.compile(r"[0-9]+")
# librdkafka's own repeat counter ("..., 3 identical error(s) suppressed)") varies too.
_ITS_SUPPRESSED = re.compile(r", # identical error\(s\) suppressed")


class RepeatLimiter:
    """Lets a line through at most once per ``interval`` seconds, counting the ones held back.

    Pure bookkeeping: the caller gives the time, so tests need no clock.
    """

    def __init__(self, interval: float = REPEAT_INTERVAL) -> None:
        self.interval = interval
        self._last: dict[object, tuple[float, int]] = {}
        """key -> (when it was last let through, repeats held back since)."""
        self._lock = threading.Lock()  # several poll threads may log through one client

    def admit(self, key: object, now: float) -> int | None:
        """``None`` to hold this line back, else how many repeats were held back before it."""
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.interval:
                self._last[key] = (last[0], last[1] + 1)
                return None
            self._last[key] = (now, 0)
            return 0 if last is None else last[1]


class _LibrdkafkaLines(logging.Filter):
    """Rewrites confluent-kafka's records into our ``key=value`` line, dropping repeats."""

    def __init__(
        self, client: str, destination: str | None, interval: float, clock: Callable[[], float]
    ) -> None:
        super().__init__()
        self._fields = f"client={client}" + (f" destination={destination}" if destination else "")
        self._repeats = RepeatLimiter(interval)
        self._clock = clock

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.msg != _CONFLUENT_FORMAT or not isinstance(args, tuple) or len(args) != 3:
            return True  # not a librdkafka line: leave it alone
        facility, _name, text = (str(arg) for arg in args)
        text = _THREAD_PREFIX.sub("", text)
        same_as = _ITS_SUPPRESSED.sub("", _NUMBERS.sub("#", text))
        held_back = self._repeats.admit((record.levelno, facility, same_as), self._clock())
        if held_back is None:
            return False
        record.msg = "librdkafka %s %s message=%r" + (" suppressed=%d" if held_back else "")
        record.args = (facility, self._fields, text, *((held_back,) if held_back else ()))
        return True


def kafka_logger(
    client: str,
    *,
    destination: str | None = None,
    interval: float = REPEAT_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
) -> logging.Logger:
    """The logger for one Kafka client's librdkafka lines (``librdkafka.<client>[.<dest>]``).

    ``client`` says which client it is (``consumer``, ``producer``, ``admin``); ``destination``
    which destination it serves, if any. The same names give the same logger.
    """
    name = ".".join(filter(None, ["librdkafka", client, destination]))
    logger = logging.getLogger(name)
    if not any(isinstance(f, _LibrdkafkaLines) for f in logger.filters):
        logger.addFilter(_LibrdkafkaLines(client, destination, interval, clock))
    return logger
