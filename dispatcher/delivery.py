"""Delivering one event to one destination: attempts bounded by a timeout, retried by tenacity.

The result says whether the destination has the event or, if not, why and after how many
attempts, so the caller can dead-letter it. Every attempt is logged for operators, counted in
the metrics, and traced as a child span of the current (per-event) span carrying the attempt
number, outcome, error and the backoff before the next attempt.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import tenacity
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from dispatcher.destinations import Destination
from dispatcher.exceptions import (
    AttemptTimeout,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from dispatcher.metrics import DeliveryMetrics
from dispatcher.retry import RetryPolicy, tenacity_stop, tenacity_wait
from eventlog import semconv
from eventlog.record import Event

__all__ = ["Outcome", "deliver"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer("dispatcher.delivery")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the delivery of one event to one destination ended."""

    delivered: bool
    attempts: int
    error: str | None = None
    """The last attempt's error when not delivered."""
    permanent: bool = False
    """The destination refused the event in a way retrying cannot fix."""


async def deliver(
    destination: Destination,
    event: Event,
    *,
    name: str,
    attempt_timeout: float,
    policy: RetryPolicy,
    metrics: DeliveryMetrics | None = None,
) -> Outcome:
    """Try ``destination.send(event)`` until it succeeds, fails permanently or attempts run out.

    Cancellation (shutdown, revoked partition) propagates: the event then counts as unfinished.
    """
    attempt = 0
    span: Span | None = None

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        backoff = state.next_action.sleep if state.next_action is not None else 0.0
        log.info(
            "attempt failed destination=%s user=%s event=%s attempt=%d/%d error=%r "
            "next_backoff=%.3fs",
            name, event.user_id, event.id, state.attempt_number, policy.max_attempts,
            str(error), backoff,
        )  # fmt: skip
        if span is not None:
            span.set_attribute(semconv.DELIVERY_NEXT_BACKOFF, backoff)
            span.end()
        if metrics is not None:
            metrics.retried(name)

    retrying = tenacity.AsyncRetrying(
        stop=tenacity_stop(policy),
        wait=tenacity_wait(policy),
        retry=tenacity.retry_if_exception_type(RetryableDeliveryError),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        async for try_ in retrying:
            with try_:
                attempt = try_.retry_state.attempt_number
                span = _start_attempt_span(name, attempt)
                try:
                    with trace.use_span(span, end_on_exit=False, record_exception=False):
                        await _attempt(destination, event, attempt_timeout)
                except DeliveryError as exc:
                    _failed(span, exc)
                    if metrics is not None:
                        metrics.attempted(name, _attempt_outcome(exc))
                    raise
                except asyncio.CancelledError:
                    span.set_attribute(semconv.DELIVERY_OUTCOME, "cancelled")
                    span.end()
                    raise
                span.set_attribute(semconv.DELIVERY_OUTCOME, "delivered")
                span.end()
                if metrics is not None:
                    metrics.attempted(name, "delivered")
    except DeliveryError as exc:
        if span is not None and span.is_recording():
            span.end()  # the last failed attempt: no backoff follows it
        permanent = isinstance(exc, PermanentDeliveryError)
        log.warning(
            "delivery failed destination=%s user=%s event=%s attempts=%d permanent=%s error=%r",
            name, event.user_id, event.id, attempt, permanent, str(exc),
        )  # fmt: skip
        return Outcome(delivered=False, attempts=attempt, error=str(exc), permanent=permanent)
    log.info(
        "delivered destination=%s user=%s event=%s attempt=%d",
        name, event.user_id, event.id, attempt,
    )  # fmt: skip
    return Outcome(delivered=True, attempts=attempt)


async def _attempt(destination: Destination, event: Event, limit: float) -> None:
    try:
        async with asyncio.timeout(limit):
            await destination.send(event)
    except TimeoutError as exc:
        raise AttemptTimeout(f"timed out after {limit:g}s") from exc
    except DeliveryError:
        raise
    except Exception as exc:
        # A destination's bug must not lose the event: count it as a failed attempt.
        log.exception("destination raised unexpectedly event=%s", event.id)
        raise RetryableDeliveryError(f"{type(exc).__name__}: {exc}") from exc


def _start_attempt_span(name: str, attempt: int) -> Span:
    return tracer.start_span(
        f"deliver {name}",
        kind=trace.SpanKind.CLIENT,
        attributes={semconv.DELIVERY_DESTINATION: name, semconv.DELIVERY_ATTEMPT: attempt},
    )


def _attempt_outcome(error: DeliveryError) -> str:
    if isinstance(error, PermanentDeliveryError):
        return "permanent_error"
    if isinstance(error, AttemptTimeout):
        return "timeout"
    return "retryable_error"


def _failed(span: Span, error: DeliveryError) -> None:
    span.set_attribute(semconv.DELIVERY_OUTCOME, _attempt_outcome(error))
    span.set_attribute(semconv.DELIVERY_ERROR, str(error))
    span.set_attribute(semconv.ERROR_TYPE, type(error).__name__)
    span.set_status(Status(StatusCode.ERROR, str(error)))
