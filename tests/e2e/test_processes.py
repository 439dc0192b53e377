"""``dispatcher --processes 2``: two processes of one manifest under a supervisor share the
partitions, deliver everything once between them, and stop together on SIGTERM."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.conftest import Stack
from tests.support.http_sink import HttpSink

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_two_processes_under_one_supervisor_share_the_work(stack: Stack, sink: HttpSink) -> None:
    stack.start_ingest()
    manifest = stack.manifest("shard", [{"name": "hook", "type": "http", "url": sink.url("/ok")}])
    supervisor = stack.start_dispatcher(manifest, args=["--processes", "2"])
    assert supervisor.wait_for_log("partitions assigned destination=hook", count=2, timeout=60)
    sent = stack.send_per_user(users=30, per_user=4)
    ids = {i for user_ids in sent.values() for i in user_ids}
    assert sink.wait_for(lambda s: {r.event_id for r in s.accepted()} >= ids, timeout=60)
    assert supervisor.stop(signal.SIGTERM, timeout=60) == 0, supervisor.log()[-3000:]
    assert supervisor.log().count("dispatcher stopped destinations=1") == 2
