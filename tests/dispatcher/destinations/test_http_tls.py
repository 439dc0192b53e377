"""https destinations against a real TLS server on loopback with a throwaway CA: verified by
default, ``ca_file`` adds a CA, and only an explicit ``tls_verify: false`` turns it off; on
each HTTP client (``make_destination``, see conftest)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from dispatcher.destinations.http import HttpOptions
from dispatcher.exceptions import RetryableDeliveryError
from eventlog.record import Event
from localkafka.secure import Certificates, make_certificates
from tests.dispatcher.destinations.conftest import MakeDestination

EVENT = Event(id="e-1", user_id="alice", payload="{}", received_at_ms=1)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def https_url(certificates: Certificates) -> AsyncIterator[str]:
    received: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.certificate, certificates.key)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


async def send(make: MakeDestination, options: HttpOptions) -> None:
    destination = make("hook", options)
    try:
        await destination.send(EVENT)
    finally:
        await destination.close()


async def test_an_unknown_ca_is_refused_by_default(
    https_url: str, make_destination: MakeDestination
) -> None:
    # Each client says it its own way: OpenSSL's words, or rustls's.
    says = "certificate verify failed|invalid peer certificate: UnknownIssuer"
    with pytest.raises(RetryableDeliveryError, match=says):
        await send(make_destination, HttpOptions(url=https_url))


async def test_ca_file_adds_a_trusted_ca(
    https_url: str, certificates: Certificates, make_destination: MakeDestination
) -> None:
    await send(make_destination, HttpOptions(url=https_url, ca_file=str(certificates.ca)))


@pytest.fixture
def ca_bundle(certificates: Certificates, tmp_path: Path) -> Path:
    """A CA file of two CAs, the server's second."""
    other = make_certificates(tmp_path / "other")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(other.ca.read_bytes() + certificates.ca.read_bytes())
    return bundle


async def test_every_certificate_of_a_ca_file_bundle_is_trusted(
    https_url: str, ca_bundle: Path, make_destination: MakeDestination
) -> None:
    await send(make_destination, HttpOptions(url=https_url, ca_file=str(ca_bundle)))


async def test_tls_verify_false_is_explicit_and_warned_about(
    https_url: str, caplog: pytest.LogCaptureFixture, make_destination: MakeDestination
) -> None:
    with caplog.at_level(logging.WARNING):
        await send(make_destination, HttpOptions(url=https_url, tls_verify=False))
    warnings = [r for r in caplog.records if "TLS certificate verification is off" in r.message]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "destination=hook" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"url": "http://h/x", "ca_file": "/etc/ssl/x.pem"}, "ca_file applies to https://"),
        ({"url": "http://h/x", "tls_verify": False}, "tls_verify applies to https://"),
        (
            {"url": "https://h/x", "tls_verify": False, "ca_file": "/x"},
            "ca_file is pointless with tls_verify: false",
        ),
        ({"url": "https://h/x", "ca_file": "/no/such/ca.pem"}, "not a readable PEM CA file"),
    ],
)
def test_contradictions_and_unusable_ca_files_are_refused(
    options: dict[str, object], says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        HttpOptions(**options)  # type: ignore[arg-type]


def test_a_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    with pytest.raises(ValueError, match="not a readable PEM CA file"):
        HttpOptions(url="https://h/x", ca_file=str(tmp_path / "ca.pem"))
