"""Webhook destinations: ``POST`` the event as JSON to a URL.

2xx is success; what other statuses mean is ``http_status``'s (configurable per destination).
Timeouts and connection errors are retried. A request the HTTP client refuses to build (a
header value it rejects) is the destination's configuration at fault, not a reason to retry.
The URL and headers are checked when the manifest is loaded, so such requests should never
be built. One connection pool per destination.

What a request holds and what its answer means is ``WebhookRequests``'s, whichever client
sends it: aiohttp here; the transport benchmark (issue 14) compares it with pyreqwest
(``http_reqwest``) through the same class.
"""

from __future__ import annotations

import email.utils
import logging
import re
import ssl
import time
import urllib.parse
from collections.abc import Sequence

import aiohttp
import msgspec
import yarl
from opentelemetry import propagate, trace

from dispatcher.destinations.base import DestinationType
from dispatcher.destinations.http_status import (
    DEFAULT_DESTINATION_STATUS,
    DEFAULT_PERMANENT_STATUS,
    DEFAULT_RETRYABLE_STATUS,
    StatusEntry,
    StatusRules,
    classify_status,
    status_codes,
)
from dispatcher.destinations.signing import parse_secret, signature_headers
from dispatcher.exceptions import DestinationMisconfigured, RetryableDeliveryError
from eventlog.record import Event
from eventlog.semconv import HTTP_RESPONSE_STATUS
from eventlog.telemetry import tracing_enabled

__all__ = ["TYPE", "HttpDestination", "HttpOptions", "WebhookRequests", "parse_retry_after"]

log = logging.getLogger(__name__)

# RFC 9110 section 5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Field values may hold visible characters, spaces and tabs, and obs-text; never CR, LF, NUL
# or another control character (a CR or LF would end the header: request smuggling).
_FORBIDDEN_IN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_NAMES = {0: "a NUL", 10: "a line feed (LF)", 13: "a carriage return (CR)"}
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


class HttpOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Manifest keys of ``type: http``."""

    url: str
    """Where to ``POST`` each event: ``http`` or ``https``, a host, a port of 1-65535 if any,
    no spaces."""
    headers: dict[str, str] = {}
    """Extra request headers; write secrets as ``${VAR}`` so they come from the environment.
    Names are RFC 9110 tokens; values hold no CR, LF, NUL or other control character."""
    max_connections: int | None = None
    """Connections kept to the destination (bounds concurrent requests too); by default the
    destination's ``concurrency``, so it never caps it."""
    retryable_status: tuple[StatusEntry, ...] = DEFAULT_RETRYABLE_STATUS
    """Statuses worth another attempt (codes and ``"500-599"`` ranges); see ``http_status``."""
    permanent_status: tuple[StatusEntry, ...] = DEFAULT_PERMANENT_STATUS
    """Statuses that refuse the one event for good (dead-lettered at once)."""
    destination_status: tuple[StatusEntry, ...] = DEFAULT_DESTINATION_STATUS
    """Statuses that say the destination as a whole is unusable (its breaker opens)."""
    signing_secret: str | tuple[str, ...] | None = None
    """Standard Webhooks secret(s) (``whsec_<base64>``, written as ``${VAR}``) every request
    is signed with; a list while rotating (one signature per secret). See ``signing``."""
    ca_file: str | None = None
    """PEM file of CA certificates trusted for an ``https`` url, besides the system's."""
    tls_verify: bool = True
    """Whether an ``https`` url's certificate is verified; ``false`` (never in production)
    logs a WARNING at start-up."""

    def __post_init__(self) -> None:
        _check_url(self.url)
        for name, value in self.headers.items():
            _check_header(name, value)
        self.signing_keys()  # raises on a bad secret, naming the field but never the secret
        self.ssl_context()  # raises on an unusable ca_file or a contradiction
        if self.max_connections is not None and self.max_connections < 1:
            # aiohttp reads 0 as "no limit"
            raise ValueError("max_connections must be at least 1")
        self.status_rules()  # raises on a bad entry, naming its list

    def status_rules(self) -> StatusRules:
        """The three status lists as sets of codes."""
        return StatusRules(
            destination=status_codes(self.destination_status, "destination_status"),
            retryable=status_codes(self.retryable_status, "retryable_status"),
            permanent=status_codes(self.permanent_status, "permanent_status"),
        )

    def ssl_context(self) -> ssl.SSLContext | bool:
        """How aiohttp checks the server: a context, or ``False`` for no verification."""
        https = self.url[:8].lower() == "https://"
        if not https and (self.ca_file is not None or not self.tls_verify):
            which = "ca_file" if self.ca_file is not None else "tls_verify"
            raise ValueError(f"{which} applies to https:// urls only; the url is http://")
        if not self.tls_verify:
            if self.ca_file is not None:
                raise ValueError("ca_file is pointless with tls_verify: false; drop one of them")
            return False
        if not https:
            return True  # unused: plain http
        context = ssl.create_default_context()
        if self.ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                what = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not PEM"
                raise ValueError(
                    f"ca_file {self.ca_file!r} is not a readable PEM CA file ({what})"
                ) from None
        return context

    def signing_keys(self) -> tuple[bytes, ...]:
        """The keys of ``signing_secret``, in order; none when requests go unsigned."""
        secrets: Sequence[str] = (
            (self.signing_secret,)
            if isinstance(self.signing_secret, str)
            else self.signing_secret or ()
        )
        if isinstance(self.signing_secret, tuple) and not secrets:
            raise ValueError("signing_secret is an empty list; give one secret, or two to rotate")
        keys = []
        for number, secret in enumerate(secrets, start=1):
            which = f" entry #{number}" if isinstance(self.signing_secret, tuple) else ""
            try:
                keys.append(parse_secret(secret))
            except ValueError as exc:
                raise ValueError(f"signing_secret{which} {exc}") from None
        return tuple(keys)


def _check_url(url: str) -> None:
    """``ValueError`` (starting with ``url``) unless every request to ``url`` could work."""
    if bad := re.search(r"[\s\x00-\x1f\x7f]", url):
        what = "a space" if bad[0] == " " else f"the character U+{ord(bad[0]):04X}"
        raise ValueError(f"url contains {what} at character {bad.start() + 1}; encode it (%20)")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"url is not a URL ({exc})") from None
    if parts.scheme not in {"http", "https"} or url[: len(parts.scheme) + 3].lower() != (
        f"{parts.scheme}://"
    ):
        raise ValueError(f"url must start with http:// or https://, got {url!r}")
    if not parts.hostname:
        raise ValueError("url has no host; write e.g. https://hooks.example/in")
    # After the user info and an IPv6 literal's brackets; "" for http://host:/ (the default).
    port = parts.netloc.rpartition("@")[2].rpartition("]")[2].partition(":")[2]
    if port and (not _DIGITS.fullmatch(port) or not 1 <= int(port) <= 65535):
        raise ValueError(f"url port must be 1 to 65535, got {port!r}")
    try:
        yarl.URL(url)
    except ValueError as exc:  # what aiohttp itself would refuse
        raise ValueError(f"url is not usable ({exc})") from None


def _check_header(name: str, value: str) -> None:
    """``ValueError`` naming ``headers.<name>`` for a header no request may carry.

    The value is never quoted: it may be a secret from ``${VAR}``.
    """
    if not _TOKEN.fullmatch(name):
        raise ValueError(
            f"headers {name!r} is not a header name; use letters, digits and"
            " !#$%&'*+-.^_`|~ (no spaces or ':')"
        )
    if bad := _FORBIDDEN_IN_VALUE.search(value):
        code = ord(bad[0])
        what = _CONTROL_NAMES.get(code, f"the control character U+{code:04X}")
        raise ValueError(
            f"headers.{name} value contains {what} at character {bad.start() + 1}; header"
            " values must not hold control characters"
        )


class HttpPayload(msgspec.Struct, frozen=True):
    """The JSON body a destination receives."""

    id: str
    user_id: str
    payload: str
    received_at_ms: int


class WebhookRequests:
    """What every HTTP client of a destination shares: each attempt's body and headers, and
    what the answer means. The client only moves the bytes (``HttpDestination`` with aiohttp;
    ``http_reqwest`` with pyreqwest, which the transport benchmark compares it with)."""

    def __init__(self, name: str, options: HttpOptions) -> None:
        self.name = name
        self.url = options.url
        self._headers = {**options.headers, "Content-Type": "application/json"}
        self._rules = options.status_rules()
        self._signing_keys = options.signing_keys()
        self._encoder = msgspec.json.Encoder()
        self.traced = tracing_enabled()
        """Whether requests carry the trace and answers are noted on the attempt's span."""
        if not options.tls_verify:
            log.warning(
                "TLS certificate verification is off (tls_verify: false) destination=%s: anyone"
                " on the path can read and change its requests",
                name,
            )

    def request(self, event: Event) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one attempt at delivering ``event``."""
        body = self._encoder.encode(
            HttpPayload(event.id, event.user_id, event.payload, event.received_at_ms)
        )
        headers = self._headers
        if self._signing_keys:
            # Per attempt: a retry gets a fresh timestamp, so receivers' replay windows hold.
            headers = {
                **headers,
                **signature_headers(
                    self._signing_keys,
                    message_id=event.id,
                    timestamp=int(time.time()),
                    body=body,
                ),
            }
        if self.traced:
            headers = dict(headers)
            propagate.inject(headers)  # the destination can join the event's trace
        return body, headers

    def check_answer(self, status: int, retry_after: str | None) -> None:
        """Return if ``status`` means delivered, else raise the ``DeliveryError`` it means
        (``retry_after``: the answer's ``Retry-After`` header, if any)."""
        if self.traced:
            trace.get_current_span().set_attribute(HTTP_RESPONSE_STATUS, status)
        error = classify_status(
            status, retry_after=parse_retry_after(retry_after), rules=self._rules
        )
        if error is not None:
            raise error


def unreachable(exc: Exception, detail: str | None = None) -> RetryableDeliveryError:
    """The error for a request that got no answer (connection, TLS, protocol): retried."""
    return RetryableDeliveryError(f"{type(exc).__name__}: {exc if detail is None else detail}")


def refused_to_build(exc: Exception) -> DestinationMisconfigured:
    """The error for a request the HTTP client refused before it left (it checks headers and
    URL as it writes them): every event would fail alike. Its text may quote a header value,
    so it is not repeated."""
    return DestinationMisconfigured(
        f"the HTTP client refused to build the request ({type(exc).__name__}); check"
        " the destination's url and headers"
    )


class HttpDestination:
    """POSTs events to one URL over a reused aiohttp connection pool."""

    def __init__(self, name: str, options: HttpOptions, concurrency: int = 100) -> None:
        self.name = name
        self._requests = WebhookRequests(name, options)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=options.max_connections or concurrency, ssl=options.ssl_context()
            ),
            timeout=aiohttp.ClientTimeout(total=None),  # the caller bounds each attempt
            raise_for_status=False,
        )

    async def send(self, event: Event) -> None:
        body, headers = self._requests.request(event)
        try:
            async with self._session.post(
                self._requests.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                delivered = 200 <= status <= 299
                retry_after = None if delivered else response.headers.get("Retry-After")
                await response.read()
        except (aiohttp.ClientError, OSError) as exc:
            raise unreachable(exc) from exc
        except (ValueError, TypeError) as exc:
            raise refused_to_build(exc) from exc
        if not delivered or self._requests.traced:
            self._requests.check_answer(status, retry_after)

    async def close(self) -> None:
        await self._session.close()


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if _DIGITS.fullmatch(value):  # str.isdigit() is true for "²" too, which float() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


TYPE = DestinationType(options=HttpOptions, create=HttpDestination)
