"""``dispatcher``: run, check or inspect the destinations of one or more manifests."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import click
import prometheus_client

from dispatcher.app import DispatcherSettings, run_dispatcher
from dispatcher.exceptions import ManifestError
from dispatcher.latency import serve_latencies
from dispatcher.manifest import Manifest, load_manifests, retention_warnings
from dispatcher.operator_cli import dead_letters, redrive_command, replay
from dispatcher.status import collect_status, format_table
from dispatcher.supervisor import resolve_processes, run_supervised
from eventlog.clients import admin_config
from eventlog.credentials import check_client_settings
from eventlog.exceptions import EventDeliveryError
from eventlog.gc_tuning import collect_less_often
from eventlog.logs import configure_logging
from eventlog.telemetry import configure_metrics, configure_tracing, shutdown_tracing

log = logging.getLogger("dispatcher")

manifest_option = click.option(
    "--manifest",
    "manifest_paths",
    multiple=True,
    type=click.Path(path_type=Path),  # the manifest loader explains a directory (exit 1)
    help="A manifest of destinations (repeatable; names must be unique across them).",
)


@click.group(invoke_without_command=True)
@manifest_option
@click.option("--check", is_flag=True, help="Validate the manifests and exit 0/1 (no Kafka).")
@click.option(
    "--drain-timeout",
    default=10.0,
    show_default=True,
    help="Seconds in-flight deliveries may take to finish at shutdown.",
)
@click.option(
    "--commit-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.01),
    help="Seconds between commits of finished offsets (also committed on shutdown/rebalance).",
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve Prometheus metrics on this port (all interfaces) at /metrics.",
)
@click.option(
    "--log-level",
    default=lambda: os.environ.get("LOG_LEVEL", "INFO"),
    show_default="INFO",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option(
    "--processes",
    default="1",
    show_default=True,
    help="Run N processes of these manifests under one supervisor (auto: one per core); with"
    " --metrics-port P, process i serves metrics on P+i. See docs/processes.md.",
)
@click.pass_context
def cli(  # noqa: PLR0917 - click passes options positionally
    ctx: click.Context,
    manifest_paths: tuple[Path, ...],
    check: bool,
    drain_timeout: float,
    commit_interval: float,
    metrics_port: int | None,
    log_level: str,
    processes: str,
) -> None:
    """Deliver the events topic to every destination of the given manifests.

    Each destination runs as its own consumer group and asyncio task; run several processes
    with the same manifest to share its partitions.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not manifest_paths:
        raise click.UsageError("give at least one --manifest FILE")
    manifests = _load(manifest_paths)
    if check:
        for warning in (w for manifest in manifests for w in retention_warnings(manifest)):
            click.echo(f"warning: {warning}", err=True)  # valid, so still exit 0
        names = sum(len(m.destinations) for m in manifests)
        click.echo(f"ok: {len(manifests)} manifest(s), {names} destination(s)")
        return
    try:
        count = resolve_processes(processes)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--processes") from None
    configure_logging(log_level)
    if count > 1:
        child = [
            sys.executable, "-m", "dispatcher", "--processes", "1", "--log-level", log_level,
            "--drain-timeout", str(drain_timeout), "--commit-interval", str(commit_interval),
        ]  # fmt: skip
        for path in manifest_paths:
            child += ["--manifest", str(path)]
        sys.exit(run_supervised(child, count, metrics_port=metrics_port))
    try:
        configure_tracing("dispatcher")
    except EventDeliveryError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    configure_metrics()
    serve_latencies()
    if metrics_port is not None:
        prometheus_client.start_http_server(metrics_port)
        log.info("metrics on http://0.0.0.0:%d/metrics", metrics_port)
    settings = DispatcherSettings(drain_timeout=drain_timeout, commit_interval=commit_interval)
    try:
        _run_until_signalled(manifests, settings)
    finally:
        shutdown_tracing()


@cli.command()
@manifest_option
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for Kafka.")
def status(manifest_paths: tuple[Path, ...], timeout: float) -> None:
    """Committed offset, end offset and lag of each destination's consumer group."""
    if not manifest_paths:
        raise click.UsageError("give at least one --manifest FILE")
    rows = []
    for manifest in _load(manifest_paths):
        try:
            check_client_settings(
                admin_config(manifest.bootstrap_servers, security=manifest.security)
            )
            rows.extend(collect_status(manifest, timeout=timeout))
        except EventDeliveryError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    click.echo(format_table(rows))


cli.add_command(replay)
cli.add_command(dead_letters)
cli.add_command(redrive_command)


def _load(paths: Sequence[Path]) -> tuple[Manifest, ...]:
    try:
        return load_manifests(paths, environ=os.environ)
    except ManifestError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _run_until_signalled(manifests: Sequence[Manifest], settings: DispatcherSettings) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            if stop.is_set():
                log.warning("second %s: exiting now", signal.Signals(signum).name)
                os._exit(1)
            log.info("%s received: stopping", signal.Signals(signum).name)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        await run_dispatcher(manifests, stop, settings)

    collect_less_often()
    try:
        _event_loop_runner()(main())
    except RuntimeError as exc:
        log.error("%s", exc)
        sys.exit(1)


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        return asyncio.run
    return uvloop.run


def main() -> None:
    cli()
