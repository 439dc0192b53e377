"""``docs/reliability.md``: how the scenarios are run, and the table of the latest run."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from reliability.scenarios import Outcome

__all__ = ["current_commit", "render", "table"]

_INTRO = """\
# Reliability under faults

Measured, not claimed: `./just reliability` runs each scenario below against a 3-node KRaft
cluster on loopback (`./just cluster-up`; three combined broker+controller nodes, the events and
dead-letter topics created with replication factor 3 and `min.insync.replicas=2`), with real
`ingest` and `dispatcher` processes and a loopback sink standing in for two HTTP destinations.

- **Load**: {users} users send {rate:.0f} events/s in all to `PUT /events`, each user one event
  at a time carrying its own sequence number. A request that fails (503, refused, cut off) is
  not repeated: the user's next event takes the next number.
- **Oracle**: the clients' record of 202s. Every event answered 202 must reach both
  destinations: a missing one is **lost** (must be 0). A second delivery of an event a
  destination already had is **duplicated** (at-least-once allows it). An event arriving for
  the first time after a later event of its user is an **order violation** (must be 0); a
  prefix delivered again after a crash is duplicates, not a violation.
- **In Kafka**: after the run the events topic is read to its end, and every 202 must be on it
  (the note "202s missing from Kafka"). That tells an event a destination did not get, but which
  is still in Kafka, uncommitted (a dispatcher restart delivers it), from one never stored.
- A dispatcher's "destination stopped" ERROR lines are quoted in the notes: such a destination
  delivers nothing more until the process is restarted.
- **Longest unavailability**: the longest time, from the fault's start to the end of the load,
  in which no request got a 202.
- **Recovered without restart**: ingest answered 202 again after the fault, and every accepted
  event was delivered and committed within the settle time, with no process restarted but the
  ones the scenario itself kills.
- Each scenario stops by itself and talks to loopback only. Scenarios 1, 4 and 7 also run in
  the test suite (`tests/reliability/`, with a smaller load), so CI holds them to the same bar.

`python -m reliability --help` lists the options (`--scenario`, `--users`, `--rate`).
"""


def table(outcomes: list[Outcome]) -> str:
    head = (
        "| scenario | accepted | delivered | lost | duplicated | order violations "
        "| longest ingest unavailability | recovered without restart | notes |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n"
    )
    rows = []
    for o in outcomes:
        v = o.verdict
        notes = [*o.notes, *o.failures]
        if v.unacknowledged:
            notes.append(f"{v.unacknowledged} events delivered though not answered 202")
        if v.missing:
            where = ", ".join(f"p{p}: {n}" for p, n in v.lost_by_partition)
            notes.append(f"lost by partition {where}; e.g. {', '.join(v.missing[:3])}")
        cell = "; ".join(notes).replace("|", "\\|")  # a pipe would end the cell
        rows.append(
            f"| {o.scenario.title} | {v.accepted} | {v.delivered} | **{v.lost}** "
            f"| {v.duplicated} | {v.order_violations} | {o.longest_unavailable:.1f} s "
            f"| {'yes' if o.recovered else 'no'} | {cell} |"
        )
    return head + "\n".join(rows) + "\n"


def render(outcomes: list[Outcome], *, users: int, rate: float, commit: str) -> str:
    """The whole document; ``commit`` is the code measured (``current_commit()`` at the start)."""
    intro = _INTRO.format(users=users, rate=rate)
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}."
    return f"{intro}\n## Latest run\n\n{stamp}\n\n{table(outcomes)}"


def current_commit() -> str:
    """The checked-out commit, and whether the work tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(Path(__file__).parent), *args],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "?"
    return commit + (" (with uncommitted changes)" if git("status", "--porcelain") else "")
