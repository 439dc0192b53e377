"""Delivering one event to one destination: attempts behind the breaker, retried by tenacity.

Before each attempt the event passes the destination's gate (``dispatcher/gate.py``): while
the breaker is open it waits there, keeping its place and its remaining attempts. What an
attempt's failure means depends on whose fault it is (``dispatcher/exceptions.py``):

* a throttle (429/503 with ``Retry-After``) pauses the whole destination and costs nothing;
* a destination-level error (401/403/404/410, misconfiguration) opens the breaker, costs
  nothing;
* a retryable failure counts against the event's ``1 + max_retries`` attempts, unless the
  breaker is (or just became) open, in which case it waits in place instead;
* a permanent refusal of this one event ends it at once (dead letter).

So an event only exhausts its attempts while the destination is otherwise healthy: that is
what parks its user. Every attempt is counted in the metrics and, when tracing, traced as a
child span of the current (per-event) span. Most deliveries succeed at once, so the first
attempt runs without the retry machinery; tenacity takes over after a failure.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from typing import NoReturn

import tenacity
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from dispatcher.destinations import Destination
from dispatcher.exceptions import (
    AttemptTimeout,
    DeliveryError,
    DestinationError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    ThrottledError,
)
from dispatcher.gate import DestinationGate, Pass
from dispatcher.metrics import DeliveryMetrics
from dispatcher.retry import MAX_RETRY_AFTER, RetryPolicy, next_backoff
from dispatcher.timeouts import Timeouts
from eventlog import semconv
from eventlog.record import Event

__all__ = ["Outcome", "Result", "deliver"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer("dispatcher.delivery")


class Result(enum.Enum):
    DELIVERED = "delivered"
    REFUSED = "refused"
    """Permanently refused by the receiver: dead-letter it."""
    EXHAUSTED = "exhausted"
    """Every attempt failed while the destination was otherwise up: park the user."""
    EVACUATE = "evacuate"
    """Still waiting for the destination when retention came close: park it."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the delivery of one event to one destination ended."""

    result: Result
    attempts: int
    """Attempts made (counted or not)."""
    error: str | None = None
    """The last attempt's error when not delivered."""

    @property
    def delivered(self) -> bool:
        return self.result is Result.DELIVERED


_DELIVERED_AT_ONCE = Outcome(Result.DELIVERED, 1)
"""The outcome of nearly every delivery, made once."""


class _Uncounted(RetryableDeliveryError):
    """An attempt that costs the event nothing: the destination is down or throttling."""


class _Evacuate(Exception):
    """The event waited for a down destination until retention came close."""


async def deliver(
    destination: Destination,
    event: Event,
    *,
    gate: DestinationGate,
    name: str,
    timeouts: Timeouts,
    policy: RetryPolicy,
    deadline: float | None = None,
    metrics: DeliveryMetrics | None = None,
    traced: bool = False,
) -> Outcome:
    """Try ``destination.send(event)`` until it is delivered, refused or exhausted.

    ``timeouts`` bounds each attempt (the destination's: one timer for all its attempts).
    ``deadline`` (wall-clock seconds): past it, an event waiting for a down destination stops
    waiting (``Result.EVACUATE``). Cancellation (shutdown, revoked partition) propagates: the
    event then counts as unfinished.
    """
    attempts = _Attempts(
        destination=destination, event=event, name=name, timeouts=timeouts,
        gate=gate, deadline=deadline, metrics=metrics, traced=traced,
    )  # fmt: skip
    try:
        try:
            await attempts.run()
        except RetryableDeliveryError as exc:
            if attempts.exhausted(policy):
                raise
            wait = attempts.backoff(policy, exc)
            attempts.retrying(policy, exc, wait)
            await asyncio.sleep(wait)
            await attempts.retry(policy)
    except _Evacuate:
        return attempts.outcome(Result.EVACUATE)
    except PermanentDeliveryError as exc:
        return attempts.gave_up(Result.REFUSED, exc)
    except DeliveryError as exc:
        return attempts.gave_up(Result.EXHAUSTED, exc)
    return attempts.outcome(Result.DELIVERED)


class _Attempts:
    """One event's attempts at one destination: gating, running, logging, counting, tracing."""

    def __init__(
        self,
        *,
        destination: Destination,
        event: Event,
        name: str,
        timeouts: Timeouts,
        gate: DestinationGate,
        deadline: float | None,
        metrics: DeliveryMetrics | None,
        traced: bool,
    ) -> None:
        self._destination = destination
        self._event = event
        self._name = name
        self._timeouts = timeouts
        self._gate = gate
        self._deadline = deadline
        self._metrics = metrics
        self._traced = traced
        self.made = 0
        self.counted = 0
        self.last_uncounted = False

    def exhausted(self, policy: RetryPolicy) -> bool:
        return self.counted >= policy.max_attempts and not self.last_uncounted

    async def retry(self, policy: RetryPolicy) -> None:
        """Attempts after the first failed one, until delivered or ``exhausted``."""

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome is not None else None
            return self.backoff(policy, error)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            self.retrying(policy, error, wait)

        async for try_ in tenacity.AsyncRetrying(
            stop=lambda _state: self.exhausted(policy),
            wait=wait,
            retry=tenacity.retry_if_exception_type(RetryableDeliveryError),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with try_:
                await self.run()

    def backoff(self, policy: RetryPolicy, error: BaseException | None) -> float:
        """The wait before the next attempt (none after an uncounted one: the gate waits)."""
        if isinstance(error, _Uncounted):
            return 0.0
        retry_after = error.retry_after if isinstance(error, RetryableDeliveryError) else None
        return next_backoff(attempt=max(1, self.counted), policy=policy, retry_after=retry_after)

    def retrying(self, policy: RetryPolicy, error: BaseException | None, wait: float) -> None:
        """A failed attempt is followed by another: one line, one count (uncounted attempts,
        made while the breaker decides, are neither: the breaker's lines say it)."""
        if isinstance(error, _Uncounted):
            return
        log.info(
            "attempt failed destination=%s user=%s event=%s attempt=%d/%d error=%r "
            "next_backoff=%.3fs",
            self._name, self._event.user_id, self._event.id, self.counted,
            policy.max_attempts, str(error), wait,
        )  # fmt: skip
        if self._metrics is not None:
            self._metrics.retried(self._name)

    async def run(self) -> None:
        """One attempt, once the gate lets it through; raises what the attempt says.

        The untraced attempt is this one coroutine (the hot path: one per delivery); a traced
        one runs inside its CLIENT span."""
        if self._gate.closed:  # nearly always: nothing to wait for at the gate
            probe = False
        else:
            admitted = await self._gate.admit(deadline=self._deadline)
            if admitted is Pass.EVACUATE:
                raise _Evacuate
            probe = admitted is Pass.PROBE
        self.made += 1
        span = self._span(self.made) if self._traced else None
        try:
            if span is None:
                with self._timeouts.bound():
                    await self._destination.send(self._event)
            else:
                with (
                    trace.use_span(span, end_on_exit=False, record_exception=False),
                    self._timeouts.bound(),
                ):
                    await self._destination.send(self._event)
        except Exception as exc:
            error = self._failure(exc)
            if span is not None:
                _failed(span, error)
                span.end()
            self._judge(error, probe=probe)
        except BaseException:  # cancelled (or the process exits): the attempt is abandoned
            if span is not None:
                span.set_attribute(semconv.DELIVERY_OUTCOME, "cancelled")
                span.end()
            if probe:
                self._gate.probe_abandoned()
            raise
        if span is not None:
            span.set_attribute(semconv.DELIVERY_OUTCOME, "delivered")
            span.end()
        if self._metrics is not None:
            self._metrics.attempted(self._name, "delivered")
        self._gate.record(ok=True, probe=probe, key=self._event.user_id)

    def _span(self, number: int) -> Span:
        return tracer.start_span(
            f"deliver {self._name}",
            kind=trace.SpanKind.CLIENT,
            attributes={
                semconv.DELIVERY_DESTINATION: self._name,
                semconv.DELIVERY_ATTEMPT: number,
            },
        )

    def _failure(self, exc: Exception) -> DeliveryError:
        """What a failed attempt's exception means, counted in the metrics."""
        if isinstance(exc, DeliveryError):
            error = exc
        elif isinstance(exc, TimeoutError):
            error = AttemptTimeout(f"timed out after {self._timeouts.seconds:g}s")
            error.__cause__ = exc
        else:
            # A destination's bug must not lose the event: count it as a failed attempt.
            _log_bug_once(self._name, exc)
            error = RetryableDeliveryError(f"{type(exc).__name__}: {exc}")
            error.__cause__ = exc
        if self._metrics is not None:
            self._metrics.attempted(self._name, _outcome(error))
        return error

    def _judge(self, error: DeliveryError, *, probe: bool) -> NoReturn:
        """Tell the gate what a failed attempt says about the destination; raise what it
        means for the event."""
        if isinstance(error, ThrottledError):
            # Capped: one destination's wish must not silence it for hours.
            self._gate.throttle(min(error.retry_after, MAX_RETRY_AFTER), f"throttled: {error}")
            raise self._uncounted(error) from error
        if isinstance(error, DestinationError):
            self._gate.trip(f"{type(error).__name__}: {error}")
            raise self._uncounted(error) from error
        if isinstance(error, PermanentDeliveryError):
            # It answered: the destination is up.
            self._gate.record(ok=True, probe=probe, key=self._event.user_id)
            raise error
        if isinstance(error, RetryableDeliveryError):
            self._gate.record(ok=False, probe=probe, key=self._event.user_id)
            if probe or not self._gate.closed:
                raise self._uncounted(error) from error  # down for everyone: wait in place
            self.counted += 1
            self.last_uncounted = False
        raise error

    def _uncounted(self, exc: DeliveryError) -> _Uncounted:
        self.last_uncounted = True
        return _Uncounted(str(exc))

    def outcome(self, result: Result) -> Outcome:
        if result is Result.DELIVERED:
            if log.isEnabledFor(logging.DEBUG):  # one call, not two, per delivery
                log.debug(
                    "delivered destination=%s user=%s event=%s attempt=%d",
                    self._name, self._event.user_id, self._event.id, self.made,
                )  # fmt: skip
            if self.made == 1:
                return _DELIVERED_AT_ONCE
        return Outcome(result, self.made)

    def gave_up(self, result: Result, error: DeliveryError) -> Outcome:
        log.warning(
            "delivery failed destination=%s user=%s event=%s attempts=%d result=%s error=%r",
            self._name, self._event.user_id, self._event.id, self.made, result.value,
            str(error),
        )  # fmt: skip
        return Outcome(result, self.made, str(error))


_BUGS_LOGGED: set[tuple[str, type[BaseException]]] = set()


def _log_bug_once(name: str, exc: Exception) -> None:
    """A traceback the first time a destination raises something it did not mean to; the
    attempt lines say the rest."""
    if (name, type(exc)) in _BUGS_LOGGED:
        return
    _BUGS_LOGGED.add((name, type(exc)))
    log.error("destination raised unexpectedly destination=%s", name, exc_info=exc)


def _failed(span: Span, exc: DeliveryError) -> None:
    span.set_attribute(semconv.DELIVERY_OUTCOME, _outcome(exc))
    span.set_attribute(semconv.DELIVERY_ERROR, str(exc))
    span.set_attribute(semconv.ERROR_TYPE, type(exc).__name__)
    span.set_status(Status(StatusCode.ERROR, str(exc)))


def _outcome(error: DeliveryError) -> str:
    if isinstance(error, PermanentDeliveryError):
        return "permanent_error"
    if isinstance(error, AttemptTimeout):
        return "timeout"
    if isinstance(error, ThrottledError):
        return "throttled"
    if isinstance(error, DestinationError):
        return "destination_error"
    return "retryable_error"
