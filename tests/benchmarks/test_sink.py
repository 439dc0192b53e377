"""The dispatch benchmark's sink, compiled (Go) and fallback (aiohttp), answering and counting
the same way: what the benchmark reads from it must not depend on which one ran."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from benchmarks.dispatch import sink as sink_module
from benchmarks.dispatch.sink import AIOHTTP_SINK, GO_SINK, SinkClient
from benchmarks.loopback import helper

SINKS = [
    pytest.param(
        GO_SINK,
        marks=pytest.mark.skipif(shutil.which("go") is None, reason="go is not installed"),
    ),
    AIOHTTP_SINK,
]


@pytest.fixture(params=SINKS)
def running_sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SinkClient]:
    started: AbstractContextManager[SinkClient]
    if request.param == GO_SINK:
        started = sink_module.sink(tmp_path)
    else:
        started = helper("sink", sink_module.__name__, tmp_path, SinkClient)
    with started as client:
        yield client


def test_it_answers_after_the_latency_and_counts(running_sink: SinkClient) -> None:
    with httpx.Client(base_url=running_sink.base_url) as http:
        fast = http.post("/latency/0", content=b"{}")
        slow = http.post("/latency/50", content=b"{}")
    assert (fast.status_code, slow.status_code) == (204, 204)
    assert slow.elapsed.total_seconds() >= 0.05

    stats = running_sink.stats()
    assert stats.count == 2
    assert stats.paths == {"/latency/0": 1, "/latency/50": 1}
    assert 0.05 <= stats.seconds < 5


def test_tagged_paths_count_distinct_event_ids(running_sink: SinkClient) -> None:
    with httpx.Client(base_url=running_sink.base_url) as http:
        for event in ("a", "b", "a"):  # "a" twice, as a retried attempt would
            http.post("/latency/0/d001", json={"id": event}).raise_for_status()

    stats = running_sink.stats()
    assert stats.count == 3
    assert stats.distinct == {"/latency/0/d001": 2}


def test_reset_forgets_what_arrived(running_sink: SinkClient) -> None:
    with httpx.Client(base_url=running_sink.base_url) as http:
        http.post("/latency/0/d001", json={"id": "a"}).raise_for_status()
    running_sink.reset()

    stats = running_sink.stats()
    assert (stats.count, stats.paths, stats.distinct) == (0, {}, {})


def test_the_compiled_sink_is_the_one_started_when_go_is_there(tmp_path: Path) -> None:
    with sink_module.sink(tmp_path) as client:
        assert client.kind == (GO_SINK if shutil.which("go") else AIOHTTP_SINK)
