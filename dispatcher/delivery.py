"""Delivering one event to one destination: attempts bounded by a timeout, retried by tenacity.

The result says whether the destination has the event or, if not, why and after how many
attempts, so the caller can dead-letter it. Every attempt is logged for operators.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import tenacity

from dispatcher.destinations import Destination
from dispatcher.exceptions import (
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from dispatcher.retry import RetryPolicy, tenacity_stop, tenacity_wait
from eventlog.record import Event

__all__ = ["Outcome", "deliver"]

log = logging.getLogger(__name__)


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
) -> Outcome:
    """Try ``destination.send(event)`` until it succeeds, fails permanently or attempts run out.

    Cancellation (shutdown, revoked partition) propagates: the event then counts as unfinished.
    """
    attempt = 0

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        backoff = state.next_action.sleep if state.next_action is not None else 0.0
        log.info(
            "attempt failed destination=%s user=%s event=%s attempt=%d/%d error=%r "
            "next_backoff=%.3fs",
            name,
            event.user_id,
            event.id,
            state.attempt_number,
            policy.max_attempts,
            str(error),
            backoff,
        )

    retrying = tenacity.AsyncRetrying(
        stop=tenacity_stop(policy),
        wait=tenacity_wait(policy),
        retry=tenacity.retry_if_exception_type(RetryableDeliveryError),
        before_sleep=log_retry,
        reraise=True,
    )
    try:
        async for try_ in retrying:
            with try_:
                attempt = try_.retry_state.attempt_number
                await _attempt(destination, event, attempt_timeout)
    except DeliveryError as exc:
        permanent = isinstance(exc, PermanentDeliveryError)
        log.warning(
            "delivery failed destination=%s user=%s event=%s attempts=%d permanent=%s error=%r",
            name,
            event.user_id,
            event.id,
            attempt,
            permanent,
            str(exc),
        )
        return Outcome(delivered=False, attempts=attempt, error=str(exc), permanent=permanent)
    log.info(
        "delivered destination=%s user=%s event=%s attempt=%d",
        name,
        event.user_id,
        event.id,
        attempt,
    )
    return Outcome(delivered=True, attempts=attempt)


async def _attempt(destination: Destination, event: Event, limit: float) -> None:
    try:
        async with asyncio.timeout(limit):
            await destination.send(event)
    except TimeoutError as exc:
        raise RetryableDeliveryError(f"timed out after {limit:g}s") from exc
    except DeliveryError:
        raise
    except Exception as exc:
        # A destination's bug must not lose the event: count it as a failed attempt.
        log.exception("destination raised unexpectedly event=%s", event.id)
        raise RetryableDeliveryError(f"{type(exc).__name__}: {exc}") from exc
