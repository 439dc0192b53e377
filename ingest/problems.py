"""Every error answer of the ingest API, in one place: RFC 9457 problem details
(``application/problem+json``) with ``type``, ``title``, ``status``, ``detail`` and, for
validation problems, ``errors`` naming each offending field. Litestar's own errors (unknown path,
wrong method, body too large, header validation) get the same shape; no answer ever carries a
traceback."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from ingest.bursts import BurstLog
from ingest.exceptions import (
    FieldError,
    InvalidRequest,
    RateLimited,
    Refused,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from ingest.stats import IngestStats

__all__ = ["PROBLEM_MEDIA_TYPE", "exception_handlers", "problem_type"]

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
_CLIENT_WENT_AWAY = "client disconnected prematurely"

_TITLES = {
    "malformed-json": (400, "Malformed JSON"),
    "invalid-request": (400, "Invalid request"),
    "invalid-event": (422, "Invalid event"),
    "invalid-batch": (422, "Invalid batch"),
    "body-too-large": (413, "Request body too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "unavailable": (503, "Temporarily unavailable"),
    "event-too-large": (413, "Event too large for Kafka"),
    "kafka-refused": (500, "Kafka refused the event"),
    "unauthorized": (401, "Unauthorized"),
    "rate-limited": (429, "Too many requests"),
}


def problem_type(kind: str) -> str:
    """The ``type`` URI of one of ingest's problems (listed in docs/ingest.md)."""
    return f"urn:event-delivery:problem:{kind}"


def _rejection_reason(exc: HTTPException) -> str:
    if isinstance(exc, ValidationException):
        return "invalid-request"
    if exc.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
        return "body-too-large"
    return f"http-{exc.status_code}"


def exception_handlers(stats: IngestStats) -> ExceptionHandlersMap:
    """Litestar exception handlers answering every error with problem details."""

    def invalid_request(_: Request[Any, Any, Any], exc: InvalidRequest) -> Response[Any]:
        stats.rejected(exc.kind)
        return _problem(exc.kind, exc.detail, errors=exc.errors)

    def unsupported_media_type(
        _: Request[Any, Any, Any], exc: UnsupportedMediaType
    ) -> Response[Any]:
        stats.rejected("unsupported-media-type")
        return _problem("unsupported-media-type", str(exc))

    def unavailable(_: Request[Any, Any, Any], exc: Unavailable) -> Response[Any]:
        stats.unavailable(exc.reason)
        return _problem(
            "unavailable",
            exc.detail,
            headers={"Retry-After": str(exc.retry_after)},
            reason=exc.reason,
        )

    def unauthorized(_: Request[Any, Any, Any], exc: Unauthorized) -> Response[Any]:
        stats.rejected("unauthorized")
        return _problem("unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"})

    # A client over its limit may retry thousands of times a second: a line per burst and
    # key, with the count, instead of one per request.
    rate_limit_logs: dict[str, BurstLog] = {}

    def rate_limited(_: Request[Any, Any, Any], exc: RateLimited) -> Response[Any]:
        stats.rejected("rate-limited")
        stats.by_key(exc.key, "rate-limited")
        burst = rate_limit_logs.get(exc.key)
        if burst is None:
            burst = rate_limit_logs[exc.key] = BurstLog(
                log, "requests over the rate limit; answered 429 key=%s retry_after=%ds"
            )
        burst.hit(exc.key, exc.retry_after)
        return _problem("rate-limited", str(exc), headers={"Retry-After": str(exc.retry_after)})

    def refused(_: Request[Any, Any, Any], exc: Refused) -> Response[Any]:
        if _TITLES[exc.kind][0] < 500:
            stats.rejected(exc.kind)
        else:
            stats.failed(exc.kind)
        return _problem(exc.kind, exc.detail)

    def http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        if exc.detail == _CLIENT_WENT_AWAY:
            # Litestar's way of saying the client hung up mid-body: no bug, and no one to answer.
            log.info("client disconnected before sending its whole body path=%s", request.url.path)
            stats.rejected("client-disconnected")
            return _problem("malformed-json", "the body ended early: the client disconnected")
        if exc.status_code >= 500:
            return unexpected(request, exc)
        stats.rejected(_rejection_reason(exc))
        if isinstance(exc, ValidationException):
            return _problem(
                "invalid-request",
                "the request is invalid: " + "; ".join(_describe_litestar(exc.extra)),
                errors=_litestar_field_errors(exc.extra),
            )
        if exc.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
            limit = request.route_handler.resolve_request_max_body_size()
            return _problem("body-too-large", f"the body is larger than {limit} bytes")
        phrase = HTTPStatus(exc.status_code).phrase
        return _problem(
            None,
            _detail_for(exc, phrase, request),
            status=exc.status_code,
            title=phrase,
            headers=exc.headers,
        )

    def unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        stats.failed("unexpected")
        log.error(
            "unexpected error method=%s path=%s", request.method, request.url.path, exc_info=exc
        )
        return _problem(
            None,
            "an unexpected error occurred; it has been logged",
            status=500,
            title=HTTPStatus.INTERNAL_SERVER_ERROR.phrase,
        )

    return {
        InvalidRequest: invalid_request,
        UnsupportedMediaType: unsupported_media_type,
        Unavailable: unavailable,
        Unauthorized: unauthorized,
        RateLimited: rate_limited,
        Refused: refused,
        HTTPException: http_exception,
        Exception: unexpected,
    }


def _problem(
    kind: str | None,
    detail: str,
    *,
    status: int | None = None,
    title: str | None = None,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
    reason: str | None = None,
) -> Response[Any]:
    if kind is not None:
        status, title = _TITLES[kind]
    body: dict[str, Any] = {
        "type": problem_type(kind) if kind else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = [_field_json(e) for e in errors]
    if reason is not None:
        body["reason"] = reason
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _field_json(error: FieldError) -> dict[str, Any]:
    item: dict[str, Any] = {"detail": error.detail, "pointer": error.pointer}
    if error.field is not None:
        item["field"] = error.field
    if error.index is not None:
        item["index"] = error.index
    return item


def _litestar_field_errors(extra: Any) -> tuple[FieldError, ...]:
    # Litestar reports e.g. {"message": "Expected `str` of length <= 256",
    # "key": "idempotency_key", "source": "header"}; name headers as they are sent.
    errors = []
    for item in extra if isinstance(extra, list) else []:
        key = item.get("key")
        if key and item.get("source") == "header":
            key = "-".join(part.capitalize() for part in key.split("_"))
        errors.append(FieldError(str(item.get("message", "is invalid")), key or None))
    return tuple(errors)


def _describe_litestar(extra: Any) -> list[str]:
    return [
        f"{e.field} {e.detail[0].lower()}{e.detail[1:]}" if e.field else e.detail
        for e in _litestar_field_errors(extra)
    ] or ["see errors"]


def _detail_for(exc: HTTPException, phrase: str, request: Request[Any, Any, Any]) -> str:
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        allowed = (exc.headers or {}).get("allow", "")
        return f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    if exc.status_code == HTTPStatus.NOT_FOUND:
        return f"no such resource: {request.url.path}"
    return exc.detail if exc.detail and exc.detail != phrase else phrase
