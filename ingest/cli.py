"""``ingest``: serve the ingest API under uvicorn (uvloop and httptools where installed)."""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click
import uvicorn
from click.core import ParameterSource
from litestar import Litestar

from eventlog.clients import admin_config
from eventlog.credentials import credentials_refused
from eventlog.exceptions import EventDeliveryError
from eventlog.gc_tuning import collect_less_often
from eventlog.kafka_security import ENVIRONMENT, SecurityError, security_settings
from eventlog.logs import configure_logging
from eventlog.telemetry import configure_metrics, configure_tracing, shutdown_tracing
from ingest.api_keys import KeyFileError, key_line, new_key
from ingest.app import create_app
from ingest.connections import fit_to_file_limit, protocol_factory
from ingest.exceptions import SettingsError
from ingest.key_ring import KeyRing
from ingest.settings import IngestSettings

__all__ = ["app_from_environment", "main", "server_options"]

log = logging.getLogger("ingest")

# Worker processes build their app from this (uvicorn starts them from an import string).
_SETTINGS_ENV = "INGEST_SETTINGS_JSON"
_LOG_LEVEL_ENV = "INGEST_LOG_LEVEL"
_DEFAULTS = IngestSettings()


@click.group(
    context_settings={"auto_envvar_prefix": "INGEST", "show_default": True},
    invoke_without_command=True,
)
@click.option("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0 for all).")
@click.option("--port", default=8080, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--bootstrap-servers",
    envvar="KAFKA_BOOTSTRAP_SERVERS",
    default="localhost:9092",
    help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS).",
)
@click.option("--topic", default=_DEFAULTS.topic, help="The events topic.")
@click.option(
    "--partitions",
    default=_DEFAULTS.partitions,
    type=click.IntRange(1),
    help="Partitions when creating the topic (an existing topic is kept as it is).",
)
@click.option(
    "--replication-factor",
    envvar="KAFKA_REPLICATION_FACTOR",
    default=_DEFAULTS.replication_factor,
    type=click.IntRange(1),
    help="Replication factor when creating the topic (3 in production; "
    "env KAFKA_REPLICATION_FACTOR).",
)
@click.option(
    "--min-insync-replicas",
    envvar="KAFKA_MIN_INSYNC_REPLICAS",
    default=None,
    type=click.IntRange(1),
    help="min.insync.replicas set on the topic when creating it (env "
    "KAFKA_MIN_INSYNC_REPLICAS)  [default: replication factor - 1, within 1..2]",
)
@click.option("--workers", default=1, type=click.IntRange(1), help="Server processes.")
@click.option(
    "--max-event-bytes",
    default=_DEFAULTS.max_event_bytes,
    type=click.IntRange(1),
    help="Largest PUT /events body, and largest payload of a batch item (413/422 beyond).",
)
@click.option(
    "--max-batch-bytes",
    default=_DEFAULTS.max_batch_bytes,
    type=click.IntRange(1),
    help="Largest POST /events/batch body (413 beyond).",
)
@click.option(
    "--max-batch-events",
    default=_DEFAULTS.max_batch_events,
    type=click.IntRange(1),
    help="Most events in one batch (422 beyond).",
)
@click.option(
    "--max-user-id-length",
    default=_DEFAULTS.max_user_id_length,
    type=click.IntRange(1),
    help="Most characters in a user_id (422 beyond).",
)
@click.option(
    "--max-concurrent-requests",
    default=_DEFAULTS.max_concurrent_requests,
    type=click.IntRange(1),
    help="Event requests handled at once per worker; more wait up to --backpressure-wait.",
)
@click.option(
    "--backpressure-wait",
    default=_DEFAULTS.backpressure_wait,
    type=click.FloatRange(0),
    help="Seconds a request may wait for a free slot before 503.",
)
@click.option(
    "--ack-timeout",
    default=_DEFAULTS.ack_timeout,
    type=click.FloatRange(0.1),
    help="Seconds to wait for Kafka's acknowledgement before 503.",
)
@click.option(
    "--retry-after",
    default=_DEFAULTS.retry_after,
    type=click.IntRange(0),
    help="Retry-After seconds sent with 503.",
)
@click.option(
    "--readiness-hold",
    default=_DEFAULTS.readiness_hold,
    type=click.FloatRange(0),
    help="Seconds /readyz answers 503 after a write was not acknowledged (unless one is "
    "acknowledged sooner).",
)
@click.option(
    "--readiness-overdue",
    default=_DEFAULTS.readiness_overdue,
    type=click.FloatRange(0, min_open=True),
    help="Seconds a write may wait unacknowledged before /readyz answers 503 (without waiting "
    "for --ack-timeout to give it up).",
)
@click.option(
    "--shutdown-timeout",
    default=_DEFAULTS.shutdown_timeout,
    type=click.FloatRange(0),
    help="Seconds to deliver queued events at shutdown.",
)
@click.option(
    "--max-header-bytes",
    default=_DEFAULTS.max_header_bytes,
    type=click.IntRange(1),
    help="Most bytes of a request's line and headers (431 beyond).",
)
@click.option(
    "--header-timeout",
    default=_DEFAULTS.header_timeout,
    type=click.FloatRange(0, min_open=True),
    help="Seconds a connection may take to send a request's headers (408 beyond).",
)
@click.option(
    "--body-timeout",
    default=_DEFAULTS.body_timeout,
    type=click.FloatRange(0, min_open=True),
    help="Seconds a request may take to send its body after its headers (408 beyond).",
)
@click.option(
    "--keep-alive-timeout",
    default=_DEFAULTS.keep_alive_timeout,
    type=click.FloatRange(0, min_open=True),
    help="Seconds an idle kept-alive connection stays open.",
)
@click.option(
    "--max-connections",
    default=_DEFAULTS.max_connections,
    type=click.IntRange(1),
    help="Connections open at once per worker; past it the longest-idle one is closed.",
)
@click.option(
    "--kafka-security-protocol",
    envvar=ENVIRONMENT["security_protocol"],
    default=None,
    help="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (env KAFKA_SECURITY_PROTOCOL)  "
    "[default: PLAINTEXT]",
)
@click.option(
    "--kafka-sasl-mechanism",
    envvar=ENVIRONMENT["sasl_mechanism"],
    default=None,
    help="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (env KAFKA_SASL_MECHANISM); the password is "
    "read from KAFKA_SASL_PASSWORD only, never a flag  [default: SCRAM-SHA-512]",
)
@click.option(
    "--kafka-sasl-username", envvar=ENVIRONMENT["sasl_username"], default=None,
    help="SASL user name (env KAFKA_SASL_USERNAME).",
)  # fmt: skip
@click.option(
    "--kafka-ssl-ca-location", envvar=ENVIRONMENT["ssl_ca_location"], default=None,
    help="CA certificate(s) to trust, PEM (env KAFKA_SSL_CA_LOCATION)  [default: the system's]",
)  # fmt: skip
@click.option(
    "--kafka-ssl-certificate-location", envvar=ENVIRONMENT["ssl_certificate_location"],
    default=None, help="Client certificate, PEM (env KAFKA_SSL_CERTIFICATE_LOCATION).",
)  # fmt: skip
@click.option(
    "--kafka-ssl-key-location", envvar=ENVIRONMENT["ssl_key_location"], default=None,
    help="Client certificate's key, PEM (env KAFKA_SSL_KEY_LOCATION).",
)  # fmt: skip
@click.option(
    "--api-keys-file",
    default=None,
    type=click.Path(dir_okay=False),
    help="File of name:sha256-hex lines (make keys with 'ingest api-key new'); event requests "
    "then need Authorization: Bearer <key>. Re-read on SIGHUP and when it changes. Without "
    "it ingest is open to anyone who can reach it.",
)
@click.option(
    "--key-rate",
    default=_DEFAULTS.key_rate,
    type=click.FloatRange(0),
    help="Event requests per second each API key may send (429 beyond); 0: no limit.",
)
@click.option(
    "--key-burst",
    default=_DEFAULTS.key_burst,
    type=click.IntRange(1),
    help="Event requests an API key may send at once after a quiet spell.",
)
@click.option(
    "--metrics-need-key/--metrics-open",
    default=_DEFAULTS.metrics_need_key,
    help="Whether /metrics needs an API key too (/healthz and /readyz never do).",
)
@click.option(
    "--log-level",
    default="INFO",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option("--access-log/--no-access-log", default=False, help="Log one line per request.")
@click.pass_context
def main(
    ctx: click.Context,
    /,
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str,
    access_log: bool,
    **settings_values: Any,
) -> None:
    """Take events over HTTP (PUT /events, POST /events/batch) into Kafka.

    Every option can also be set as INGEST_<OPTION> in the environment (e.g. INGEST_PORT).
    The topic is created when missing; while Kafka is unreachable, ingest keeps retrying and
    /readyz answers 503. SIGTERM stops it gracefully: no new connections, in-flight requests
    answered, producer flushed, exit 0.
    """
    if ctx.invoked_subcommand is not None:
        return
    kafka_security = _kafka_security(ctx, security_values(settings_values))
    try:
        settings = IngestSettings(**settings_values, kafka_security=kafka_security)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    configure_logging(log_level)
    if settings.kafka_security and (
        refused := credentials_refused(
            admin_config(settings.bootstrap_servers, security=settings.kafka_security)
        )
    ):
        click.echo(f"error: {refused}", err=True)
        sys.exit(1)
    if settings.api_keys_file:
        try:  # the file is read here too, so a bad one stops ingest before it listens
            KeyRing(Path(settings.api_keys_file))
        except SettingsError as exc:
            raise click.UsageError(str(exc)) from None
    try:
        configure_tracing("ingest")  # fail here, with a usage error, on a bad OTEL_* setting
    except EventDeliveryError as exc:
        raise click.UsageError(str(exc)) from None
    os.environ[_SETTINGS_ENV] = json.dumps(settings.to_dict())
    os.environ[_LOG_LEVEL_ENV] = log_level
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again for the
    # previous handler; this one turns it into a clean exit (0) instead of death by signal.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    log.info("ingest listening host=%s port=%d workers=%d", host, port, workers)
    uvicorn.run(
        f"{__name__}:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="auto",
        log_config=None,
        log_level=log_level.lower(),
        access_log=access_log,
        lifespan="on",
        **server_options(settings),
    )


@main.group("api-key")
def api_key() -> None:
    """Manage the API keys of an --api-keys-file."""


@api_key.command("new")
@click.argument("name")
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The key file to add the key's line to (created when missing).",
)
def api_key_new(name: str, path: Path) -> None:
    """Make a key named NAME, add its name:sha256 line to FILE, and print the key.

    The key is printed once, alone on the last line, and kept nowhere: the file holds only
    its SHA-256. A running ingest picks the line up on its own (or on SIGHUP).
    """
    key = new_key()
    try:
        line = key_line(name, key)
        taken = KeyRing(path).keys.names_by_digest.values() if path.exists() else ()
    except (KeyFileError, SettingsError) as exc:
        raise click.UsageError(str(exc)) from None
    if name in taken:
        raise click.UsageError(f"{path} already has a key named {name!r}; revoke it first")
    existing = path.read_bytes() if path.exists() else b""
    separator = "" if not existing or existing.endswith(b"\n") else "\n"
    # The file lets nobody in, but which names exist is still the operator's business.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as file:
        file.write(f"{separator}{line}\n")
    click.echo(f"added key {name!r} to {path}; send it as: Authorization: Bearer <key>", err=True)
    click.echo(key)


def security_values(settings_values: dict[str, Any]) -> dict[str, str]:
    """The ``--kafka-*`` security options given (taken out of ``settings_values``)."""
    given = {}
    for key in ENVIRONMENT:
        value = settings_values.pop(f"kafka_{key}", None)
        if value is not None:
            given[key] = value
    return given


def _kafka_security(ctx: click.Context, given: dict[str, str]) -> dict[str, str]:
    # The password comes only from the environment: a flag would show in `ps`.
    password = ENVIRONMENT["sasl_password"]
    environ = {password: os.environ.get(password, "")}
    flags = {}
    for key, value in given.items():
        # Handed over as the environment they came from, so an error names the variable.
        if ctx.get_parameter_source(f"kafka_{key}") is ParameterSource.ENVIRONMENT:
            environ[ENVIRONMENT[key]] = value
        else:
            flags[key] = value
    try:
        return security_settings(flags, environ)
    except SecurityError as exc:
        option = f"--kafka-{exc.key.replace('_', '-')}"
        if exc.key == "sasl_password":
            option = password
        raise click.UsageError(f"{option}: {exc.problem}") from None


def server_options(settings: IngestSettings) -> dict[str, Any]:
    """uvicorn settings that carry ingest's: its bounds on connections, and the drain."""
    limits = fit_to_file_limit(settings.connection_limits)
    return {
        "http": protocol_factory(limits),
        # No WebSocket routes: an upgraded connection would leave the bounds above behind.
        "ws": "none",
        "timeout_keep_alive": limits.keep_alive_timeout,
        "backlog": limits.backlog,
        "timeout_graceful_shutdown": settings.drain_seconds,
    }


def app_from_environment() -> Litestar:
    """The app of one server process, from the settings ``main`` put in the environment."""
    configure_logging(os.environ.get(_LOG_LEVEL_ENV, "INFO"))
    # Per server process: exporters run threads, which must start in the process using them.
    if configure_tracing("ingest"):
        atexit.register(shutdown_tracing)
    configure_metrics()
    app = create_app(IngestSettings(**json.loads(os.environ[_SETTINGS_ENV])))
    collect_less_often()
    return app


def _exit_cleanly(signum: int, _: FrameType | None) -> None:
    raise SystemExit(0)
