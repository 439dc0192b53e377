"""``dispatcher dead-letters`` and ``dispatcher redrive``: what a destination refused for good,
and sending chosen ones through delivery again.

Dead letters are permanent refusals (or records this version could not read), so redrive
promises no order: a redriven event reaches the destination after whatever of its user came
since. It goes through the normal delivery path (timeouts, retries, the breaker, tracing) with
the destination built from the manifest, from this process; the dead-letter topic is a log,
so a redriven letter stays listed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from confluent_kafka import Message

from dispatcher.breaker import Transition
from dispatcher.deadletter import PREFIX
from dispatcher.delivery import Outcome, deliver
from dispatcher.destinations import TYPES
from dispatcher.gate import DestinationGate
from dispatcher.manifest import DestinationSpec, Manifest
from dispatcher.tables import format_table
from dispatcher.timeouts import Timeouts
from dispatcher.topic_reader import read_to_end
from eventlog.exceptions import RecordFormatError
from eventlog.record import Event, decode

__all__ = ["Letter", "format_letters", "read_letters", "redrive"]


@dataclass(frozen=True, slots=True)
class Letter:
    at_ms: int
    user: str
    event: Event | None
    event_id: str
    attempts: int
    error: str
    where: str
    """``partition:offset`` on the dead-letter topic."""


def read_letters(manifest: Manifest, destination: str, *, timeout: float = 30.0) -> list[Letter]:
    """Every dead letter of ``destination``, oldest first (blocking)."""
    letters = []
    for message in read_to_end(
        manifest.bootstrap_servers,
        manifest.dead_letter_topic,
        timeout=timeout,
        security=manifest.security,
    ):
        raw = message.headers() or []
        pairs = raw.items() if isinstance(raw, dict) else raw
        headers = {k: v for k, v in pairs if isinstance(v, bytes)}
        if headers.get(f"{PREFIX}destination") != destination.encode():
            continue
        letters.append(_letter(message, headers))
    return sorted(letters, key=lambda letter: letter.at_ms)


def _letter(message: Message, headers: dict[str, bytes]) -> Letter:
    def text(name: str) -> str:
        return headers.get(name, b"").decode("utf-8", "replace")

    try:
        event: Event | None = decode(message.key(), message.value(), list(headers.items()))
    except RecordFormatError:
        event = None
    attempts = text(f"{PREFIX}attempts")
    at = text(f"{PREFIX}at-ms")
    return Letter(
        at_ms=int(at) if at.isdigit() else 0,
        user=(message.key() or b"").decode("utf-8", "replace"),
        event=event,
        event_id=event.id if event else text("event-id") or "-",
        attempts=int(attempts) if attempts.isdigit() else 0,
        error=text(f"{PREFIX}error"),
        where=f"{message.partition()}:{message.offset()}",
    )


def format_letters(letters: list[Letter]) -> str:
    header = ("TIME", "USER", "EVENT", "ATTEMPTS", "ERROR", "AT")
    rows = [
        (
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(letter.at_ms / 1000)),
            letter.user[:40], letter.event_id[:40], str(letter.attempts),
            letter.error[:80].replace("\n", " "), letter.where,
        )
        for letter in letters
    ]  # fmt: skip
    return format_table(header, rows)


async def redrive(
    spec: DestinationSpec, letters: list[Letter], *, each_within: float = 60.0
) -> list[tuple[Letter, Outcome | str]]:
    """Deliver each letter again, one after another, through the normal delivery path; each
    gets at most ``each_within`` seconds (a destination that stays down must not hold the
    command)."""
    destination = TYPES[spec.type].create(spec.name, spec.options, spec.concurrency)
    transitions: list[Transition] = []
    gate = DestinationGate(spec.breaker, on_transition=transitions.append)
    timeouts = Timeouts(spec.timeout)
    results: list[tuple[Letter, Outcome | str]] = []
    try:
        for letter in letters:
            if letter.event is None:
                results.append((letter, "undecodable: cannot be delivered"))
                continue
            try:
                async with asyncio.timeout(each_within):
                    outcome: Outcome | str = await deliver(
                        destination, letter.event, gate=gate, name=spec.name,
                        timeouts=timeouts, policy=spec.retry,
                    )  # fmt: skip
            except TimeoutError:
                outcome = f"not delivered within {each_within:g}s (destination down?)"
            results.append((letter, outcome))
    finally:
        await destination.close()
    return results
