"""The ``http`` destination on pyreqwest (Rust's reqwest and hyper) instead of aiohttp: the
transport comparison of issue 14, measured by ``python -m benchmarks.bench_dispatch --only
transport``. Not a destination type of its own, and no manifest chooses it: the benchmark
installs it in place of ``http`` (``benchmarks.dispatch.transport``). It needs the ``dev``
extra (``pyreqwest``), which the dispatcher itself does not.

The same requests and the same meaning of answers as ``HttpDestination`` (both use
``http.WebhookRequests``): body, headers, Standard Webhooks signatures, trace propagation,
status classification and ``Retry-After``; redirects are answers, never followed; the pool
holds ``max_connections`` (default: the destination's ``concurrency``) requests in flight;
``https`` urls are verified against the system's CAs plus ``ca_file``, unless ``tls_verify``
is false. Errors map to the same exceptions.

One difference the caller cannot see through ``send``: cancelling ``send`` (the caller's
per-attempt timeout) does not stop pyreqwest's request, which runs on in its own runtime and
keeps its place in the pool until the destination answers. Given ``attempt_timeout``, each
request also ends itself then, so a destination that hangs cannot fill the pool with requests
nobody waits for; without it, such requests hold their places until answered.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import RequestError

from dispatcher.destinations.base import DestinationType
from dispatcher.destinations.http import (
    HttpOptions,
    WebhookRequests,
    refused_to_build,
    unreachable,
)
from eventlog.record import Event

__all__ = ["ReqwestHttpDestination", "reqwest_type"]

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)


class ReqwestHttpDestination:
    """POSTs events to one URL over a reused pyreqwest connection pool.

    ``http2``: HTTP/2 for the comparison, with prior knowledge on an ``http`` url (h2c),
    negotiated by ALPN on an ``https`` one. ``attempt_timeout``: seconds after which a request
    ends itself (the caller's per-attempt timeout; see the module's note on cancelling).
    """

    def __init__(
        self,
        name: str,
        options: HttpOptions,
        concurrency: int = 100,
        *,
        http2: bool = False,
        attempt_timeout: float | None = None,
    ) -> None:
        self.name = name
        self._requests = WebhookRequests(name, options)
        self._client = _client(options, concurrency, http2=http2, attempt_timeout=attempt_timeout)

    async def send(self, event: Event) -> None:
        body, headers = self._requests.request(event)
        try:
            request = (
                self._client.post(self._requests.url).headers(headers).body_bytes(body).build()
            )
        except (ValueError, TypeError) as exc:
            raise refused_to_build(exc) from exc
        try:
            # send() reads the whole answer, as HttpDestination does.
            response = await request.send()
        except RequestError as exc:
            raise unreachable(exc, _cause(exc)) from exc
        except (ValueError, TypeError) as exc:
            raise refused_to_build(exc) from exc
        self._requests.check_answer(response.status, response.get_header("Retry-After"))

    async def close(self) -> None:
        await self._client.close()


def _client(
    options: HttpOptions, concurrency: int, *, http2: bool, attempt_timeout: float | None
) -> Client:
    builder = (
        ClientBuilder()
        .max_connections(options.max_connections or concurrency)
        .follow_redirects(False)  # a redirect is an answer: retried, never followed
    )
    if attempt_timeout is not None:
        builder = builder.timeout(timedelta(seconds=attempt_timeout))
    if http2:
        https = options.url[:8].lower() == "https://"
        builder = builder.http2(True) if https else builder.http2_prior_knowledge()
    if not options.tls_verify:  # HttpOptions refuses it for http urls, and warns otherwise
        builder = builder.danger_accept_invalid_certs(True)
    if options.ca_file is not None:  # HttpOptions checked that it is readable PEM
        # reqwest reads one certificate per call: a bundle is added one at a time.
        for certificate in _PEM_CERTIFICATE.findall(Path(options.ca_file).read_bytes()):
            builder = builder.add_root_certificate_pem(certificate)
    return builder.build()


def _cause(exc: RequestError) -> str:
    """``exc``'s message with its innermost cause, which says what went wrong (``connection
    error (Connection refused (os error 111))``, ``... (invalid peer certificate: ...)``)."""
    causes = (exc.details or {}).get("causes") or []
    innermost = causes[-1]["message"] if causes else ""
    return f"{exc.message} ({innermost})" if innermost else exc.message


def reqwest_type(*, http2: bool = False, attempt_timeout: float | None = None) -> DestinationType:
    """The ``http`` destination type with pyreqwest as its client (the benchmark's)."""

    def create(name: str, options: HttpOptions, concurrency: int) -> ReqwestHttpDestination:
        return ReqwestHttpDestination(
            name, options, concurrency, http2=http2, attempt_timeout=attempt_timeout
        )

    return DestinationType(options=HttpOptions, create=create)
