"""Does the cluster take our credentials? Asked once at start-up, before any other client.

librdkafka treats a refused login like an unreachable broker: it retries forever, logging
each attempt. A wrong password or an untrusted certificate never fixes itself, so ingest and
the dispatcher ask first and stop with one line instead. A cluster that does not answer at all
is not a credentials problem: they carry on and wait for it as before.

Settings librdkafka cannot even build a client from (a CA or key file that is not PEM) raise
``KafkaException`` from the client's constructor; that too becomes one line here, not a
traceback wherever the first client happens to be built.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from eventlog.exceptions import EventDeliveryError

__all__ = ["ClientSettingsError", "check_client_settings", "credentials_refused"]

_ASK_EVERY = 1.0
_REFUSALS = {
    KafkaError._AUTHENTICATION,  # librdkafka's own (local) error codes start with _
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError._SSL,
}


class ClientSettingsError(EventDeliveryError):
    """librdkafka cannot build a client from the settings (e.g. a CA file that is not PEM)."""


def check_client_settings(config: Mapping[str, Any]) -> None:
    """Raise ``ClientSettingsError`` if librdkafka cannot build a client from ``config``.

    For the operator's commands, which build several clients and want one line, not a
    traceback. librdkafka reads the settings (and the certificate files they name) when a
    client is built, so one is built to find out and dropped at once, unused.
    """
    quiet = {key: value for key, value in config.items() if key != "logger"}
    try:
        AdminClient({**quiet, "log_level": 0})
    except KafkaException as exc:
        raise ClientSettingsError(_settings_refused(exc)) from exc


def credentials_refused(config: Mapping[str, Any], *, timeout: float = 10.0) -> str | None:
    """Why the cluster refuses the credentials in ``config``, or librdkafka cannot use them
    (one line); ``None`` if neither.

    ``None`` too when no broker answered within ``timeout`` (then nothing is known yet).
    """
    refused: list[str] = []

    def on_error(error: KafkaError) -> None:
        if error.code() in _REFUSALS and not refused:
            refused.append(error.str())

    quiet: dict[str, Any] = {key: value for key, value in config.items() if key != "logger"}
    quiet.update(error_cb=on_error, log_level=0)
    try:
        admin = AdminClient(quiet)
    except KafkaException as exc:
        return _settings_refused(exc)
    deadline = time.monotonic() + timeout
    while not refused and (left := deadline - time.monotonic()) > 0:
        # All brokers down raises: refused, if error_cb says why; else not reachable yet.
        with contextlib.suppress(KafkaException):
            admin.list_topics(timeout=min(_ASK_EVERY, left))
            return None
        admin.poll(0.1)  # error_cb is served from poll() only
    if not refused:
        return None
    return f"kafka refused the credentials at {config.get('bootstrap.servers')}: {refused[0]}"


def _settings_refused(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    reason = error.str() if isinstance(error, KafkaError) else str(exc)
    return f"kafka client settings refused: {reason}"
