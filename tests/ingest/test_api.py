"""The HTTP API against a real broker: what is accepted is on the topic as the record format
says, in each user's order; what is refused gets its problem and never reaches Kafka."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import confluent_kafka
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

import eventlog.producer
from eventlog.clients import producer_config
from eventlog.producer import AsyncProducer, Delivered, ProduceError
from eventlog.record import Headers, decode
from ingest import IngestSettings, create_app
from tests.ingest.conftest import (
    MAX_BATCH_BYTES,
    MAX_EVENT_BYTES,
    TOPIC_PARTITIONS,
    GatedProducer,
    IngestUnderTest,
    end_offsets,
    read_topic,
    running,
    wait_ready,
)
from tests.support.queue_full import QueueFullAtFirst

pytestmark = pytest.mark.kafka

JSON = {"Content-Type": "application/json"}


def _users_on_one_partition(count: int) -> list[str]:
    """User ids murmur2 puts on the same partition, so their events interleave there."""
    by_partition: dict[int, list[str]] = {}
    for n in range(1000):
        user = f"user-{n}"
        users = by_partition.setdefault(
            confluent_kafka.murmur2(user.encode(), TOPIC_PARTITIONS), []
        )
        users.append(user)
        if len(users) == count:
            return users
    raise AssertionError("no partition got enough users")


async def test_an_accepted_event_is_on_the_topic_as_the_record_format_says(
    ingest: IngestUnderTest,
) -> None:
    await wait_ready(ingest.client)
    payload = '{"clicked": "buy", "note": "é 😀"}'
    before_ms = time.time_ns() // 1_000_000
    response = await ingest.client.put("/events", json={"user_id": "alice", "payload": payload})
    after_ms = time.time_ns() // 1_000_000
    assert response.status_code == 202, response.text
    body = response.json()

    [record] = read_topic(ingest.settings.bootstrap_servers, ingest.topic, 1)
    assert record.key() == b"alice"
    assert record.value() == payload.encode()
    assert record.partition() == confluent_kafka.murmur2(b"alice", TOPIC_PARTITIONS)
    assert (body["partition"], body["offset"]) == (record.partition(), record.offset())
    event = decode(record.key(), record.value(), record.headers())
    assert event.id == body["id"]
    assert len(event.id) == 36  # a UUID
    assert before_ms <= event.received_at_ms <= after_ms
    assert dict(record.headers() or [])["event-format"] == b"1"


async def test_the_idempotency_key_is_the_event_id(ingest: IngestUnderTest) -> None:
    await wait_ready(ingest.client)
    response = await ingest.client.put(
        "/events",
        json={"user_id": "bob", "payload": "p"},
        headers={"Idempotency-Key": "order-7f3a"},
    )
    assert response.status_code == 202
    assert response.json()["id"] == "order-7f3a"
    [record] = read_topic(ingest.settings.bootstrap_servers, ingest.topic, 1)
    assert dict(record.headers() or [])["event-id"] == b"order-7f3a"


async def test_a_retry_with_the_same_idempotency_key_carries_the_same_event_id(
    ingest: IngestUnderTest,
) -> None:
    # A client that got no answer (or a 503) sends again: receivers can drop the duplicate.
    await wait_ready(ingest.client)
    for _ in range(2):
        response = await ingest.client.put(
            "/events",
            json={"user_id": "bob", "payload": "p"},
            headers={"Idempotency-Key": "order-7f3a"},
        )
        assert response.status_code == 202
    records = read_topic(ingest.settings.bootstrap_servers, ingest.topic, 2)
    assert {dict(r.headers() or [])["event-id"] for r in records} == {b"order-7f3a"}
    batch = [{"user_id": "bob", "payload": "b"}] * 2
    answers = [
        await ingest.client.post("/events/batch", json=batch, headers={"Idempotency-Key": "k"})
        for _ in range(2)
    ]
    assert [[r["id"] for r in a.json()["results"]] for a in answers] == [["k:0", "k:1"]] * 2


async def test_each_users_events_keep_their_order_under_concurrent_requests(
    ingest: IngestUnderTest,
) -> None:
    await wait_ready(ingest.client)
    users = _users_on_one_partition(2)
    per_user = 40
    # Each user sends its events one after another; the users' requests run concurrently,
    # alongside a stream of unrelated users' requests.
    reported: dict[str, list[tuple[int, int]]] = {user: [] for user in users}

    async def send_in_order(user: str) -> None:
        for n in range(per_user):
            response = await ingest.client.put(
                "/events", json={"user_id": user, "payload": f"{user}#{n}"}
            )
            assert response.status_code == 202, response.text
            reported[user].append((response.json()["partition"], response.json()["offset"]))

    async def noise(n: int) -> None:
        response = await ingest.client.put(
            "/events", json={"user_id": f"other-{n}", "payload": "noise"}
        )
        assert response.status_code == 202

    await asyncio.gather(*(send_in_order(u) for u in users), *(noise(n) for n in range(40)))

    records = read_topic(ingest.settings.bootstrap_servers, ingest.topic, 2 * per_user + 40)
    for user in users:
        mine = [r for r in records if r.key() == user.encode()]
        assert [r.value() for r in mine] == [f"{user}#{n}".encode() for n in range(per_user)]
        assert [(r.partition(), r.offset()) for r in mine] == reported[user]
    # The two users really shared a partition, interleaved.
    shared = {r.partition() for r in records if r.key() in {u.encode() for u in users}}
    assert len(shared) == 1


async def test_a_batch_is_stored_in_order_with_a_result_per_event(
    ingest: IngestUnderTest,
) -> None:
    await wait_ready(ingest.client)
    users = _users_on_one_partition(2)
    events = [{"user_id": users[n % 2], "payload": f"b{n}"} for n in range(200)]
    response = await ingest.client.post(
        "/events/batch", json=events, headers={"Idempotency-Key": "batch-1"}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["failed"]) == (200, 0)
    results = body["results"]
    assert [r["index"] for r in results] == list(range(200))
    assert [r["id"] for r in results] == [f"batch-1:{n}" for n in range(200)]
    assert all(r["status"] == "accepted" for r in results)
    offsets = [r["offset"] for r in results]
    assert offsets == sorted(offsets)  # one partition, stored in the batch's order

    records = read_topic(ingest.settings.bootstrap_servers, ingest.topic, 200)
    stored = sorted(records, key=lambda r: r.offset() or 0)
    assert [r.value() for r in stored] == [e["payload"].encode() for e in events]
    assert [dict(r.headers() or [])["event-id"] for r in stored] == [
        f"batch-1:{n}".encode() for n in range(200)
    ]


_OK = {"user_id": "u", "payload": "p"}


@dataclass(frozen=True)
class BadRequest:
    """A request ingest must refuse, and how."""

    status: int
    kind: str
    """The problem type's last part; empty for Litestar's own (``about:blank``)."""
    field: str | None = None
    method: str = "PUT"
    path: str = "/events"
    json: Any = None
    content: Any = None
    headers: dict[str, str] | None = None

    def send_with(self, client: AsyncTestClient[Litestar]) -> Any:
        kwargs: dict[str, Any] = {"headers": self.headers or {}}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.content is not None:
            kwargs["content"] = self.content() if callable(self.content) else self.content
        return client.request(self.method, self.path, **kwargs)


BAD_REQUESTS = {
    "missing user_id": BadRequest(422, "invalid-event", "user_id", json={"payload": "p"}),
    "empty user_id": BadRequest(422, "invalid-event", "user_id", json={**_OK, "user_id": ""}),
    "number user_id": BadRequest(422, "invalid-event", "user_id", json={**_OK, "user_id": 7}),
    "long user_id": BadRequest(422, "invalid-event", "user_id", json={**_OK, "user_id": "u" * 257}),
    "missing payload": BadRequest(422, "invalid-event", "payload", json={"user_id": "u"}),
    "object payload": BadRequest(422, "invalid-event", "payload", json={**_OK, "payload": {}}),
    "unknown field": BadRequest(422, "invalid-event", "priority", json={**_OK, "priority": 1}),
    "array body": BadRequest(422, "invalid-event", json=[_OK]),
    "malformed JSON": BadRequest(400, "malformed-json", content=b'{"user_id": "u",', headers=JSON),
    "text/plain": BadRequest(
        415, "unsupported-media-type", content=b"hi", headers={"Content-Type": "text/plain"}
    ),
    "no content type": BadRequest(415, "unsupported-media-type", content=b'{"user_id": "u"}'),
    "body too large": BadRequest(
        413, "body-too-large", json={"user_id": "u", "payload": "x" * MAX_EVENT_BYTES}
    ),
    "bad Idempotency-Key": BadRequest(
        400, "invalid-request", "Idempotency-Key", json=_OK, headers={"Idempotency-Key": "a b"}
    ),
    # A batch's item i gets the id "<key>:<i>": no key of a single event may look like one.
    "Idempotency-Key with a colon": BadRequest(
        400, "invalid-request", "Idempotency-Key", json=_OK, headers={"Idempotency-Key": "a:0"}
    ),
    "GET /events": BadRequest(405, "", method="GET"),
    "POST /events": BadRequest(405, "", method="POST", json=_OK),
    "PUT /events/batch": BadRequest(405, "", path="/events/batch", json=[_OK]),
    "batch with a bad item": BadRequest(
        422,
        "invalid-batch",
        "user_id",
        method="POST",
        path="/events/batch",
        json=[_OK, {"user_id": 1, "payload": "p"}, _OK],
    ),
    "batch not an array": BadRequest(
        422, "invalid-batch", method="POST", path="/events/batch", json=_OK
    ),
    "empty batch": BadRequest(422, "invalid-batch", method="POST", path="/events/batch", json=[]),
    "batch of 1001": BadRequest(
        422, "invalid-batch", method="POST", path="/events/batch", json=[_OK] * 1001
    ),
    "deeply nested": BadRequest(
        400, "malformed-json", content=b"[" * 1000 + b"]" * 1000, headers=JSON
    ),
    "unbalanced nesting": BadRequest(400, "malformed-json", content=b"[" * 5000, headers=JSON),
    "deeply nested payload": BadRequest(
        400,
        "malformed-json",
        content=b'{"user_id": "u", "payload": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        headers=JSON,
    ),
    "deeply nested batch": BadRequest(
        400,
        "malformed-json",
        method="POST",
        path="/events/batch",
        content=b"[" * 1000 + b"]" * 1000,
        headers=JSON,
    ),
    "malformed batch": BadRequest(
        400, "malformed-json", method="POST", path="/events/batch", content=b"[{", headers=JSON
    ),
    "batch too large": BadRequest(
        413,
        "body-too-large",
        method="POST",
        path="/events/batch",
        json=[{"user_id": "u", "payload": "x" * (MAX_EVENT_BYTES - 100)}] * 20,
    ),
    "batch item payload too large": BadRequest(
        422,
        "invalid-batch",
        "payload",
        method="POST",
        path="/events/batch",
        json=[_OK, {"user_id": "u", "payload": "x" * (MAX_EVENT_BYTES + 1)}],
    ),
}


@pytest.mark.parametrize("bad", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
async def test_bad_input_gets_its_problem_and_never_reaches_kafka(
    ingest: IngestUnderTest, bad: BadRequest
) -> None:
    assert MAX_BATCH_BYTES < 20 * (MAX_EVENT_BYTES - 100)  # "batch too large" is too large
    await wait_ready(ingest.client)
    response = await bad.send_with(ingest.client)

    assert response.status_code == bad.status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == bad.status
    kind = f"urn:event-delivery:problem:{bad.kind}" if bad.kind else "about:blank"
    assert problem["type"] == kind
    assert problem["title"]
    assert problem["detail"]
    if bad.field is not None:
        assert bad.field in [error.get("field") for error in problem["errors"]], problem
    if bad.status == 405:
        assert "allow" in response.headers
    assert "Traceback" not in response.text
    assert end_offsets(ingest.settings.bootstrap_servers, ingest.topic) == [0] * TOPIC_PARTITIONS


async def test_the_nothing_reached_kafka_check_sees_an_accepted_event(
    ingest: IngestUnderTest,
) -> None:
    # The check above would pass vacuously if end offsets never moved; here one does.
    await wait_ready(ingest.client)
    await ingest.client.post("/events/batch", json=[_OK, {"user_id": ""}])
    assert (await ingest.client.put("/events", json=_OK)).status_code == 202
    assert sum(end_offsets(ingest.settings.bootstrap_servers, ingest.topic)) == 1


async def test_health_readiness_and_the_openapi_schema_are_served(
    ingest: IngestUnderTest,
) -> None:
    assert (await ingest.client.get("/healthz")).json() == {"status": "ok"}
    await wait_ready(ingest.client)
    assert (await ingest.client.get("/readyz")).json() == {"status": "ready"}
    schema = (await ingest.client.get("/schema/openapi.json")).json()
    put_event = schema["paths"]["/events"]["put"]
    body_schema = put_event["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema["required"] == ["user_id", "payload"]
    assert body_schema["additionalProperties"] is False
    assert {"202", "400", "413", "415", "422", "503"} <= set(put_event["responses"])
    assert "/events/batch" in schema["paths"]
    assert (await ingest.client.get("/schema")).status_code == 200


class RefusingProducer(GatedProducer):
    """The real producer, except that Kafka "refuses" every record whose payload is refuse."""

    async def produce(
        self, topic: str, *, key: bytes, value: bytes, headers: Headers | None = None
    ) -> Delivered:
        if value == b"refuse":
            raise ProduceError(
                "Broker: Message size too large", retriable=False, code="MSG_SIZE_TOO_LARGE"
            )
        return await self.inner.produce(topic, key=key, value=value, headers=headers)


async def test_a_batch_reports_each_event_kafka_refused_and_stores_the_rest(
    ingest_settings: IngestSettings,
) -> None:
    config = producer_config(
        ingest_settings.bootstrap_servers, **ingest_settings.producer_overrides()
    )
    producer = RefusingProducer(AsyncProducer(config))
    async with running(create_app(ingest_settings, producer=producer)) as client:
        await wait_ready(client)
        events = [{"user_id": "u", "payload": p} for p in ("a", "refuse", "b")]
        response = await client.post("/events/batch", json=events)
        assert response.status_code == 202, response.text
        body = response.json()
        assert (body["accepted"], body["failed"]) == (2, 1)
        assert [r["status"] for r in body["results"]] == ["accepted", "failed", "accepted"]
        assert "Message size too large" in body["results"][1]["error"]
        assert "offset" not in body["results"][1]

        # Refused for good, each of them: sending it again cannot help, so no 503.
        refused = await client.post("/events/batch", json=[events[1], events[1]])
        assert refused.status_code == 413, refused.text
        assert "retry-after" not in refused.headers
        assert refused.json()["type"] == "urn:event-delivery:problem:event-too-large"

    records = read_topic(ingest_settings.bootstrap_servers, ingest_settings.topic, 2)
    assert sorted(r.value() or b"" for r in records) == [b"a", b"b"]


async def test_a_batch_keeps_its_order_when_the_producer_queue_is_full_at_first(
    ingest_settings: IngestSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventlog.producer, "Producer", QueueFullAtFirst)
    monkeypatch.setattr(QueueFullAtFirst, "refusals", 1)
    events = [{"user_id": "ursula", "payload": f"e{n}"} for n in range(4)]
    async with running(create_app(ingest_settings)) as client:
        await wait_ready(client)
        response = await client.post("/events/batch", json=events)
        assert response.status_code == 202, response.text
    records = read_topic(ingest_settings.bootstrap_servers, ingest_settings.topic, 4)
    stored = sorted(records, key=lambda r: r.offset() or 0)
    assert [r.value() for r in stored] == [b"e0", b"e1", b"e2", b"e3"]
