"""The operator's dead-letter commands against a running system: list what a destination
refused for good, then send it through delivery again."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack
from tests.support.http_sink import HttpSink
from tests.support.processes import BIN

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dispatcher"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_dead_letters_are_listed_and_redriven(stack: Stack, sink: HttpSink) -> None:
    sink.failing["strict"] = {"ann"}
    stack.start_ingest()
    manifest: Path = stack.manifest(
        "shard", [{"name": "hook", "type": "http", "url": sink.url("/refuse/strict")}]
    )
    stack.start_dispatcher(manifest)
    refused = [stack.send("ann", f"a{i}") for i in range(3)]
    fine = stack.send("bob", "b0")
    assert len(stack.read_topic(stack.dead_letter_topic, 3)) == 3
    assert sink.wait_for(lambda s: fine in {r.event_id for r in s.accepted()})

    listed = _command("dead-letters", "--manifest", str(manifest), "--destination", "hook")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["TIME", "USER", "EVENT", "ATTEMPTS", "ERROR", "AT"]
    assert [line.split()[3] for line in lines[1:]] == refused  # oldest first
    assert all("HTTP 422" in line for line in lines[1:])

    again = ["redrive", "--manifest", str(manifest), "--destination", "hook"]
    still_refused = _command(*again, "--event", refused[0])
    assert still_refused.returncode == 1
    assert f"failed: event={refused[0]} user=ann error=HTTP 422" in still_refused.stdout

    sink.failing["strict"] = set()
    redriven = _command(*again, "--all")
    assert redriven.returncode == 0, redriven.stdout + redriven.stderr
    assert [line.split()[1] for line in redriven.stdout.splitlines()] == [
        f"event={event_id}" for event_id in refused
    ]
    assert {r.event_id for r in sink.accepted()} >= set(refused)
    assert (
        _command("dead-letters", "--manifest", str(manifest), "--destination", "nope").returncode
        == 1
    )
