"""The operator's commands on parked users and dead letters: ``replay``, ``dead-letters``,
``redrive`` (registered on the ``dispatcher`` group by ``cli.py``)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click

from dispatcher.dead_letters import Letter, format_letters, read_letters, redrive
from dispatcher.exceptions import ManifestError
from dispatcher.manifest import DestinationSpec, Manifest, load_manifests
from dispatcher.park_records import ReadReplayResult
from dispatcher.replay_command import find_destination, parked_users, request_replay
from eventlog.clients import admin_config
from eventlog.credentials import check_client_settings
from eventlog.exceptions import EventDeliveryError

__all__ = ["dead_letters", "redrive_command", "replay"]

manifest_argument = click.option(
    "--manifest",
    "manifest_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The manifest of the destination.",
)
destination_argument = click.option(
    "--destination", required=True, help="The destination's name in the manifest."
)


def _destination(path: Path, name: str) -> tuple[Manifest, DestinationSpec]:
    try:
        manifest = load_manifests([path], environ=os.environ)[0]
        spec = find_destination(manifest, name)
        check_client_settings(admin_config(manifest.bootstrap_servers, security=manifest.security))
        return manifest, spec
    except (ManifestError, EventDeliveryError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _letters(manifest: Manifest, spec: DestinationSpec, timeout: float) -> list[Letter]:
    try:
        return read_letters(manifest, spec.name, timeout=timeout)
    except EventDeliveryError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@click.command()
@manifest_argument
@destination_argument
@click.option("--user", default=None, help="Only this user (default: every parked user).")
@click.option("--dry-run", is_flag=True, help="Only say what is parked.")
@click.option(
    "--timeout", default=120.0, show_default=True, help="Seconds to wait for the running owners."
)
def replay(
    manifest_path: Path, destination: str, user: str | None, dry_run: bool, timeout: float
) -> None:
    """Replay parked events now, in order, through the running dispatchers.

    The owners of the destination's partitions replay each parked user through the normal
    delivery path and release the users whose parked events were all delivered. Exit 0 when
    every user asked for was released (or nothing was parked), 1 otherwise.
    """
    manifest, spec = _destination(manifest_path, destination)
    try:
        users = parked_users(manifest, spec, user=user, timeout=min(timeout, 30.0))
    except EventDeliveryError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if not users:
        who = f" for user {user!r}" if user else ""
        click.echo(f"nothing parked at {spec.name}{who}")
        return
    for parked in users:
        click.echo(
            f"parked: partition={parked.partition} user={parked.user} "
            f"events={len(parked.events)} retries={parked.retries}"
        )
    if dry_run:
        click.echo(f"dry run: {len(users)} user(s) would be replayed")
        return

    def show(result: ReadReplayResult) -> None:
        state = "released" if result.released else f"still parked: {result.error}"
        click.echo(f"replayed: user={result.user} events={result.replayed} {state}")

    try:
        report = request_replay(manifest, spec, users, user=user, timeout=timeout, on_result=show)
    except EventDeliveryError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if report.answered != report.asked:
        missing = ",".join(str(p) for p in sorted(report.asked - report.answered))
        click.echo(
            f"error: no answer for partitions {missing} within {timeout:g}s; is a dispatcher of"
            f" {spec.name} running? The request stays on the park and is answered when one is.",
            err=True,
        )
        sys.exit(1)
    if not all(result.released for result in report.results):
        sys.exit(1)


@click.command("dead-letters")
@manifest_argument
@destination_argument
@click.option("--limit", default=50, show_default=True, help="Show the newest N.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for Kafka.")
def dead_letters(manifest_path: Path, destination: str, limit: int, timeout: float) -> None:
    """List a destination's dead letters: time, user, event id, attempts, error."""
    manifest, spec = _destination(manifest_path, destination)
    letters = _letters(manifest, spec, timeout)
    if not letters:
        click.echo(f"no dead letters for {spec.name}")
        return
    click.echo(format_letters(letters[-limit:]))
    if len(letters) > limit:
        click.echo(f"({len(letters) - limit} older not shown; --limit to see more)")


@click.command("redrive")
@manifest_argument
@destination_argument
@click.option("--event", "event_ids", multiple=True, help="An event id to redrive (repeatable).")
@click.option("--all", "everything", is_flag=True, help="Redrive every dead letter.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for Kafka.")
def redrive_command(
    manifest_path: Path, destination: str, event_ids: tuple[str, ...], everything: bool,
    timeout: float,
) -> None:  # fmt: skip
    """Send chosen dead letters through delivery again (no order promised: they were
    refused for good once). Exit 0 if every one was delivered."""
    if not event_ids and not everything:
        raise click.UsageError("say which: --event ID (repeatable) or --all")
    manifest, spec = _destination(manifest_path, destination)
    letters = _letters(manifest, spec, timeout)
    chosen = letters if everything else [x for x in letters if x.event_id in set(event_ids)]
    if not chosen:
        click.echo(f"no matching dead letters for {spec.name}")
        return
    failed = 0
    for letter, outcome in asyncio.run(redrive(spec, chosen)):
        if isinstance(outcome, str) or not outcome.delivered:
            failed += 1
            why = outcome if isinstance(outcome, str) else outcome.error
            click.echo(f"failed: event={letter.event_id} user={letter.user} error={why}")
        else:
            click.echo(f"delivered: event={letter.event_id} user={letter.user}")
    if failed:
        sys.exit(1)
