"""The table in docs/reliability.md: one row per scenario, the issue's columns, notes that
cannot break the table."""

from __future__ import annotations

from reliability.check import Verdict
from reliability.report import render, table
from reliability.scenarios import SCENARIOS, Outcome


def outcome(key: str, verdict: Verdict, **extra: object) -> Outcome:
    (scenario,) = [s for s in SCENARIOS if s.key == key]
    fields: dict[str, object] = {
        "longest_unavailable": 1.25, "recovered": True, "answers": {"202": 10},
        "notes": (), "failures": (),
    }  # fmt: skip
    fields.update(extra)
    return Outcome(scenario=scenario, verdict=verdict, **fields)  # type: ignore[arg-type]


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def test_each_scenario_is_a_row_with_the_issues_columns() -> None:
    good = Verdict(accepted=10, delivered=10, lost=0, duplicated=3, order_violations=0,
                   unacknowledged=0)  # fmt: skip
    bad = Verdict(accepted=10, delivered=7, lost=3, duplicated=0, order_violations=1,
                  unacknowledged=2, missing=("e1", "e2", "e3"),
                  lost_by_partition=((4, 3),))  # fmt: skip
    text = table(
        [
            outcome("leader-kill", good, notes=("nodes back in 12s",)),
            outcome("ingest-kill", bad, recovered=False, failures=("RuntimeError: a | b",)),
        ]
    )
    header, rule, first, second = text.splitlines()
    assert cells(header)[:8] == [
        "scenario", "accepted", "delivered", "lost", "duplicated", "order violations",
        "longest ingest unavailability", "recovered without restart",
    ]  # fmt: skip
    assert rule.count("|") == header.count("|")
    assert cells(first)[1:8] == ["10", "10", "**0**", "3", "0", "1.2 s", "yes"]
    row = cells(second)
    assert row[1:8] == ["10", "7", "**3**", "0", "1", "1.2 s", "no"]
    assert len(row) == 9, "a pipe in a note split the cell"
    assert "lost by partition p4: 3" in row[8]
    assert "2 events delivered though not answered 202" in row[8]


def test_the_document_says_how_it_was_measured_and_when() -> None:
    verdict = Verdict(accepted=1, delivered=1, lost=0, duplicated=0, order_violations=0,
                      unacknowledged=0)  # fmt: skip
    text = render([outcome("dispatcher-kill", verdict)], users=300, rate=300, commit="abc1234")
    assert text.startswith("# Reliability under faults")
    assert "300 users send 300 events/s" in text
    assert "## Latest run" in text
    assert "commit abc1234." in text
    assert "| 4. SIGKILL the dispatcher 5 times |" in text
