"""A client's ``Idempotency-Key`` reaches the receiver as the signed ``webhook-id``: ingest and
the dispatcher as real processes, a real broker, and a loopback receiver verifying each request
with the independent ``standardwebhooks`` package. So a receiver deduplicating on
``webhook-id`` drops the copy a client's retry (or a dispatcher's) produced."""

from __future__ import annotations

import base64
import os
from collections import Counter

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def test_the_idempotency_key_arrives_as_the_webhook_id(stack: Stack) -> None:
    # The receiver fails its first request: that event's retry must carry the same id too.
    with WebhookReceiver([SECRET], fail_first=1) as receiver:
        ingest = stack.start_ingest()
        manifest = stack.manifest(
            "hooks",
            [{"name": "hook", "type": "http", "url": receiver.url, "signing_secret": "${HOOK}"}],
        )
        stack.start_dispatcher(manifest, env={"HOOK": SECRET})
        with httpx.Client(base_url=ingest.url, timeout=30) as client:
            # A client sending one event twice (its first answer got lost, say) and a batch.
            for _ in range(2):
                answer = client.put(
                    "/events",
                    json={"user_id": "alice", "payload": "order"},
                    headers={"Idempotency-Key": "order-7f3a"},
                )
                assert answer.status_code == 202, answer.text
                assert answer.json()["id"] == "order-7f3a"
            batch = client.post(
                "/events/batch",
                json=[{"user_id": "bob", "payload": "a"}, {"user_id": "carol", "payload": "b"}],
                headers={"Idempotency-Key": "import-1"},
            )
            assert batch.status_code == 202, batch.text
        # 4 events, one of them tried twice.
        requests = receiver.wait_for_requests(5, timeout=60)

    assert all(request.verified for request in requests)
    ids = [{k.lower(): v for k, v in r.headers.items()}["webhook-id"] for r in requests]
    # The first request was answered 500 and tried again; every later one was taken.
    assert Counter(ids[1:]) == {"order-7f3a": 2, "import-1:0": 1, "import-1:1": 1}
    assert ids[0] in ids[1:]
