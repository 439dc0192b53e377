"""The HTTP endpoints: ``PUT /events``, ``POST /events/batch``, ``GET /healthz``,
``GET /readyz``. Handlers are built per app so they close over its settings and publisher."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

import prometheus_client
from litestar import Request, Response, get, post, put, route
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import HeaderParameter

from eventlog.producer import Delivered
from eventlog.record import Event
from ingest.authentication import KEY_STATE, Authentication
from ingest.backpressure import RequestSlots
from ingest.event_ids import event_id
from ingest.problems import PROBLEM_MEDIA_TYPE
from ingest.publisher import EventPublisher, Failure
from ingest.readiness import KafkaWatch, Readiness
from ingest.schemas import Accepted, BatchAccepted, BatchItemResult, Health, Problem
from ingest.settings import IngestSettings
from ingest.validation import (
    JSON_MEDIA_TYPE,
    USER_ID_PATTERN,
    check_content_type,
    parse_batch,
    parse_event,
)

__all__ = ["RouteContext", "routes"]

MAX_IDEMPOTENCY_KEY_LENGTH = 256
METRICS_MEDIA_TYPE = "; ".join(
    # Litestar adds the charset to every text/ type itself; prometheus_client's already has one.
    p
    for p in prometheus_client.CONTENT_TYPE_LATEST.split("; ")
    if not p.startswith("charset=")
)

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        # Printable ASCII without space or colon: a batch's item i gets the id "<key>:<i>",
        # which no single event's key can then equal.
        pattern=r"^[!-9;-~]+$",
        description="The event's id instead of a new UUID (printable ASCII, without spaces "
        "or colons); send the same key when retrying so that every copy carries the same id "
        "and receivers can drop the duplicate. In a batch, item i gets the id `<key>:<i>`. "
        "When ingest has API keys, the id is scoped by the API key's name: `<name>:<key>`.",
    ),
]


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What the handlers of one app share."""

    settings: IngestSettings
    publisher: EventPublisher
    slots: RequestSlots
    readiness: Readiness
    watch: KafkaWatch
    authentication: Authentication


def routes(ctx: RouteContext) -> list[HTTPRouteHandler]:
    """The app's route handlers."""
    settings, publisher, slots = ctx.settings, ctx.publisher, ctx.slots

    async def put_event(
        request: Request[Any, Any, Any], idempotency_key: IdempotencyKey = None
    ) -> Accepted:
        """Store one event; answered once Kafka acknowledged it (all in-sync replicas)."""
        received_at_ms = time.time_ns() // 1_000_000
        check_content_type(request.content_type[0])
        # The body is read before taking a slot: a slow client must not hold one of the
        # slots that bound the work in progress (its connection's limits bound it instead).
        body = await request.body()
        async with slots.hold():
            event_in = parse_event(body, max_user_id_length=settings.max_user_id_length)
            key_name = request.state.get(KEY_STATE)
            event = Event(
                id=event_id(idempotency_key, key_name=key_name),
                user_id=event_in.user_id,
                payload=event_in.payload,
                received_at_ms=received_at_ms,
            )
            delivered = await publisher.publish(event, key_name=key_name)
        return Accepted(id=event.id, partition=delivered.partition, offset=delivered.offset)

    async def post_batch(
        request: Request[Any, Any, Any], idempotency_key: IdempotencyKey = None
    ) -> BatchAccepted:
        """Store up to ``max_batch_events`` events, in order. The batch is validated whole
        first: one invalid event rejects it all (422, each bad event listed by index) and
        nothing is written. Then each event gets its own result; 503 if none was stored."""
        received_at_ms = time.time_ns() // 1_000_000
        check_content_type(request.content_type[0])
        body = await request.body()  # before taking a slot, as for PUT /events
        async with slots.hold():
            items = parse_batch(
                body,
                max_user_id_length=settings.max_user_id_length,
                max_event_bytes=settings.max_event_bytes,
                max_batch_events=settings.max_batch_events,
            )
            key_name = request.state.get(KEY_STATE)
            events = [
                Event(
                    id=event_id(idempotency_key, key_name=key_name, index=index),
                    user_id=item.user_id,
                    payload=item.payload,
                    received_at_ms=received_at_ms,
                )
                for index, item in enumerate(items)
            ]
            outcomes = await publisher.publish_batch(events, key_name=key_name)
        pairs = zip(events, outcomes, strict=True)
        results = [_item_result(i, event, outcome) for i, (event, outcome) in enumerate(pairs)]
        failed = sum(r.status == "failed" for r in results)
        return BatchAccepted(accepted=len(results) - failed, failed=failed, results=results)

    async def metrics() -> Response[bytes]:
        """Prometheus metrics of this process (text exposition format)."""
        return Response(prometheus_client.generate_latest(), media_type=METRICS_MEDIA_TYPE)

    async def healthz() -> Response[Health]:
        """The process is alive (and its Kafka producer still usable)."""
        if ctx.watch.fatal is not None:
            return Response(Health("failed", ctx.watch.fatal), status_code=503)
        return Response(Health("ok"))

    async def readyz() -> Response[Health]:
        """Ready for events: the producer reaches the cluster and the topic exists."""
        reason = await ctx.readiness.not_ready_because()
        if reason is not None:
            return Response(Health("not ready", reason), status_code=503)
        return Response(Health("ready"))

    event_schema = _event_schema(settings.max_user_id_length)
    errors = _error_responses()
    auth = ctx.authentication
    event_errors = (
        (400, 413, 415, 422, 503) if auth.ring is None else (400, 401, 413, 415, 422, 429, 503)
    )
    return [
        put(
            "/events",
            status_code=202,
            response_description="Kafka acknowledged the event (all in-sync replicas).",
            request_max_body_size=settings.max_event_bytes,
            operation_class=_with_body(event_schema, "One event."),
            responses={k: errors[k] for k in event_errors},
            guards=[auth.events],
            summary="Store one event",
            tags=["events"],
        )(put_event),
        post(
            "/events/batch",
            status_code=202,
            response_description="At least one event was acknowledged; see each result.",
            request_max_body_size=settings.max_batch_bytes,
            operation_class=_with_body(
                Schema(
                    type=OpenAPIType.ARRAY,
                    items=event_schema,
                    min_items=1,
                    max_items=settings.max_batch_events,
                ),
                f"1 to {settings.max_batch_events} events, stored in this order.",
            ),
            responses={k: errors[k] for k in event_errors},
            guards=[auth.events],
            summary="Store a batch of events",
            tags=["events"],
        )(post_batch),
        # HEAD too: load balancers probe with it.
        route(
            "/healthz",
            http_method=["GET", "HEAD"],
            summary="Liveness",
            tags=["operations"],
            responses={503: _health_response("The Kafka producer failed for good: restart.")},
        )(healthz),
        route(
            "/readyz",
            http_method=["GET", "HEAD"],
            summary="Readiness",
            tags=["operations"],
            responses={
                503: _health_response(
                    "Not ready for events now (`reason` says why): writes are not being "
                    "acknowledged, Kafka does not answer, the topic is not there yet, or "
                    "ingest is stopping. Send events elsewhere."
                )
            },
        )(readyz),
        get(
            "/metrics",
            summary="Prometheus metrics",
            tags=["operations"],
            media_type=METRICS_MEDIA_TYPE,
            guards=[auth.metrics] if settings.metrics_need_key else [],
            responses={401: errors[401]} if settings.metrics_need_key else None,
        )(metrics),
    ]


def _health_response(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=Health, description=description, generate_examples=False)


def _item_result(index: int, event: Event, outcome: Delivered | Failure) -> BatchItemResult:
    if not isinstance(outcome, Delivered):
        return BatchItemResult(index, event.id, "failed", error=outcome.detail)
    return BatchItemResult(index, event.id, "accepted", outcome.partition, outcome.offset)


def _event_schema(max_user_id_length: int) -> Schema:
    return Schema(
        type=OpenAPIType.OBJECT,
        required=["user_id", "payload"],
        properties={
            "user_id": Schema(
                type=OpenAPIType.STRING,
                min_length=1,
                max_length=max_user_id_length,
                pattern=USER_ID_PATTERN,
                description="Whose event; the Kafka key. Events of one user keep their order. "
                "At least one visible character (not only whitespace), and no control "
                "characters, invisible format characters (e.g. U+200B zero-width space, "
                "U+202E right-to-left override, U+FEFF) or line separators.",
            ),
            "payload": Schema(
                type=OpenAPIType.STRING, description="Stored as the record value, unchanged."
            ),
        },
        additional_properties=False,
        examples=[{"user_id": "user-42", "payload": '{"clicked": "buy"}'}],
    )


def _with_body(schema: Schema, description: str) -> type[Operation]:
    # The handlers read and validate the body themselves (to report every bad field, and every
    # bad batch item by index), so Litestar cannot infer the request body; describe it here.
    body = RequestBody(
        content={JSON_MEDIA_TYPE: OpenAPIMediaType(schema=schema)},
        description=description,
        required=True,
    )

    @dataclass
    class WithRequestBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = body

    return WithRequestBody


def _error_responses() -> dict[int, ResponseSpec]:
    described = {
        400: "Malformed JSON, or an invalid Idempotency-Key header.",
        401: "No API key, or one ingest does not know (`Authorization: Bearer <key>`).",
        429: "The API key is over its rate limit; retry after `Retry-After` seconds. "
        "Nothing was written.",
        413: "The body is larger than the configured limit.",
        415: "Content-Type is not application/json.",
        422: "Well-formed JSON that is not a valid event (batch: not a valid batch); "
        "`errors` names each offending field. Nothing was written.",
        503: "Kafka did not acknowledge in time, or ingest is saturated or stopping; "
        "retry after `Retry-After` seconds.",
    }
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=text,
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status, text in described.items()
    }
