"""Delivering one event to one destination: attempts bounded by a timeout, retried by tenacity.

The result says whether the destination has the event or, if not, why and after how many
attempts, so the caller can dead-letter it. Every attempt is logged for operators, counted in
the metrics and, when tracing, traced as a child span of the current (per-event) span carrying
the attempt number, outcome, error and the backoff before the next attempt.

Most deliveries succeed at once, so the first attempt runs without the retry machinery;
tenacity takes over only once an attempt has failed.
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
from dispatcher.retry import RetryPolicy, next_backoff, tenacity_stop, tenacity_wait
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
    traced: bool = False,
) -> Outcome:
    """Try ``destination.send(event)`` until it succeeds, fails permanently or attempts run out.

    Cancellation (shutdown, revoked partition) propagates: the event then counts as unfinished.
    """
    attempts = _Attempts(
        destination=destination, event=event, name=name, timeout=attempt_timeout,
        metrics=metrics, traced=traced,
    )  # fmt: skip
    try:
        await attempts.run(1)
    except PermanentDeliveryError as exc:
        return attempts.gave_up(exc, 1)
    except RetryableDeliveryError as exc:
        if policy.max_attempts == 1:
            return attempts.gave_up(exc, 1)
        backoff = next_backoff(attempt=1, policy=policy, retry_after=exc.retry_after)
        attempts.retrying(1, policy.max_attempts, exc, backoff)
        await asyncio.sleep(backoff)
    else:
        return attempts.delivered(1)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        backoff = state.next_action.sleep if state.next_action is not None else 0.0
        attempts.retrying(1 + state.attempt_number, policy.max_attempts, error, backoff)

    number = 1
    try:
        async for try_ in tenacity.AsyncRetrying(
            stop=tenacity_stop(policy, attempts_before=1),
            wait=tenacity_wait(policy, attempts_before=1),
            retry=tenacity.retry_if_exception_type(RetryableDeliveryError),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with try_:
                number = 1 + try_.retry_state.attempt_number
                await attempts.run(number)
    except DeliveryError as exc:
        return attempts.gave_up(exc, number)
    return attempts.delivered(number)


class _Attempts:
    """One event's attempts at one destination: running, logging, counting, tracing them."""

    def __init__(
        self,
        *,
        destination: Destination,
        event: Event,
        name: str,
        timeout: float,
        metrics: DeliveryMetrics | None,
        traced: bool,
    ) -> None:
        self._destination = destination
        self._event = event
        self._name = name
        self._timeout = timeout
        self._metrics = metrics
        self._traced = traced
        self._span: Span | None = None  # the last failed attempt's, until its backoff is known

    async def run(self, number: int) -> None:
        if not self._traced:
            await self._attempt(number)
            return
        span = tracer.start_span(
            f"deliver {self._name}",
            kind=trace.SpanKind.CLIENT,
            attributes={
                semconv.DELIVERY_DESTINATION: self._name,
                semconv.DELIVERY_ATTEMPT: number,
            },
        )
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False):
                await self._attempt(number)
        except DeliveryError as exc:
            span.set_attribute(semconv.DELIVERY_OUTCOME, _outcome(exc))
            span.set_attribute(semconv.DELIVERY_ERROR, str(exc))
            span.set_attribute(semconv.ERROR_TYPE, type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            self._span = span  # ended by retrying() or gave_up()
            raise
        except asyncio.CancelledError:
            span.set_attribute(semconv.DELIVERY_OUTCOME, "cancelled")
            span.end()
            raise
        span.set_attribute(semconv.DELIVERY_OUTCOME, "delivered")
        span.end()

    async def _attempt(self, number: int) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._destination.send(self._event)
        except TimeoutError as exc:
            error: DeliveryError = AttemptTimeout(f"timed out after {self._timeout:g}s")
            error.__cause__ = exc
        except DeliveryError as exc:
            error = exc
        except Exception as exc:
            # A destination's bug must not lose the event: count it as a failed attempt.
            log.exception("destination raised unexpectedly event=%s", self._event.id)
            error = RetryableDeliveryError(f"{type(exc).__name__}: {exc}")
            error.__cause__ = exc
        else:
            if self._metrics is not None:
                self._metrics.attempted(self._name, "delivered")
            return
        if self._metrics is not None:
            self._metrics.attempted(self._name, _outcome(error))
        raise error

    def retrying(self, number: int, of: int, error: BaseException | None, backoff: float) -> None:
        event = self._event
        log.info(
            "attempt failed destination=%s user=%s event=%s attempt=%d/%d error=%r "
            "next_backoff=%.3fs",
            self._name, event.user_id, event.id, number, of, str(error), backoff,
        )  # fmt: skip
        if self._span is not None:
            self._span.set_attribute(semconv.DELIVERY_NEXT_BACKOFF, backoff)
            self._span.end()
            self._span = None
        if self._metrics is not None:
            self._metrics.retried(self._name)

    def delivered(self, attempts: int) -> Outcome:
        log.info(
            "delivered destination=%s user=%s event=%s attempt=%d",
            self._name, self._event.user_id, self._event.id, attempts,
        )  # fmt: skip
        return Outcome(delivered=True, attempts=attempts)

    def gave_up(self, error: DeliveryError, attempts: int) -> Outcome:
        if self._span is not None:
            self._span.end()  # the last failed attempt: no backoff follows it
            self._span = None
        permanent = isinstance(error, PermanentDeliveryError)
        log.warning(
            "delivery failed destination=%s user=%s event=%s attempts=%d permanent=%s error=%r",
            self._name, self._event.user_id, self._event.id, attempts, permanent, str(error),
        )  # fmt: skip
        return Outcome(delivered=False, attempts=attempts, error=str(error), permanent=permanent)


def _outcome(error: DeliveryError) -> str:
    if isinstance(error, PermanentDeliveryError):
        return "permanent_error"
    if isinstance(error, AttemptTimeout):
        return "timeout"
    return "retryable_error"
