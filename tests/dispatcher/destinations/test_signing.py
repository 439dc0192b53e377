"""Signed webhooks: requests a Standard Webhooks receiver verifies, with an independent verifier
(the ``standardwebhooks`` package), and secrets that are refused at ``--check`` unseen."""

from __future__ import annotations

import base64
import hmac
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher import delivery
from dispatcher.breaker import BreakerPolicy
from dispatcher.destinations import http, mock
from dispatcher.destinations.http import HttpOptions
from dispatcher.destinations.signing import parse_secret, signature_headers
from dispatcher.durations import Duration
from dispatcher.exceptions import DeliveryError, ManifestError
from dispatcher.gate import DestinationGate
from dispatcher.manifest import load_manifest
from dispatcher.retry import RetryPolicy
from dispatcher.timeouts import Timeouts
from eventlog.record import Event
from tests.dispatcher.destinations.conftest import MakeDestination
from tests.support.webhook_receiver import WebhookReceiver, verifies

OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"x" * 32).decode()
EVENTS = [
    Event(id=f"e-{n}", user_id="alice", payload=f'{{"n": {n}, "text": "é"}}', received_at_ms=n)
    for n in range(3)
]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver([OLD]) as server:
        yield server


async def deliver(
    make: MakeDestination, secret: str | tuple[str, ...], url: str, *, events: list[Event]
) -> None:
    destination = make("hook", HttpOptions(url=url, signing_secret=secret))
    try:
        for event in events:
            await destination.send(event)
    finally:
        await destination.close()


async def test_every_request_verifies_with_standardwebhooks(
    receiver: WebhookReceiver, make_destination: MakeDestination
) -> None:
    before = time.time()
    await deliver(make_destination, OLD, receiver.url, events=EVENTS)
    requests = receiver.wait_for_requests(len(EVENTS))
    assert all(request.verified for request in requests)
    headers = [{k.lower(): v for k, v in request.headers.items()} for request in requests]
    assert [h["webhook-id"] for h in headers] == [event.id for event in EVENTS]
    assert all(before - 1 <= int(h["webhook-timestamp"]) <= time.time() + 1 for h in headers)


async def test_a_retried_attempt_keeps_the_id_and_is_signed_afresh(
    make_destination: MakeDestination,
) -> None:
    # A second after the first attempt at least, so its timestamp (whole seconds) must differ.
    policy = RetryPolicy(
        max_retries=2, initial_backoff=Duration(1.1), max_backoff=Duration(1.1), jitter=False
    )
    gate = DestinationGate(
        BreakerPolicy(consecutive_failures=1000, min_volume=1000), on_transition=lambda _: None
    )
    with WebhookReceiver([OLD], fail_first=1) as receiver:
        destination = make_destination(
            "hook", HttpOptions(url=receiver.url, signing_secret=OLD), attempt_timeout=5
        )
        try:
            outcome = await delivery.deliver(
                destination, EVENTS[0], gate=gate, name="hook", timeouts=Timeouts(5), policy=policy
            )
        finally:
            await destination.close()
        requests = receiver.wait_for_requests(2)
    assert (outcome.result, outcome.attempts) == (delivery.Result.DELIVERED, 2)
    first, retry = ({k.lower(): v for k, v in r.headers.items()} for r in requests)
    # Each verifies on its own with the independent package, the retry within its tolerance
    # of the receiver's clock because it was signed when sent, not when first tried.
    assert all(verifies(OLD, r.body, r.headers) for r in requests)
    assert first["webhook-id"] == retry["webhook-id"] == EVENTS[0].id
    assert int(retry["webhook-timestamp"]) > int(first["webhook-timestamp"])
    assert first["webhook-signature"] != retry["webhook-signature"]
    assert requests[0].body == requests[1].body


async def test_a_tampered_body_or_id_fails_verification(
    receiver: WebhookReceiver, make_destination: MakeDestination
) -> None:
    await deliver(make_destination, OLD, receiver.url, events=EVENTS[:1])
    (request,) = receiver.wait_for_requests(1)
    assert verifies(OLD, request.body, request.headers)
    assert not verifies(OLD, request.body.replace(b"alice", b"mallory"), request.headers)
    assert not verifies(OLD, request.body + b" ", request.headers)
    # Header names are case-insensitive: aiohttp sends them as written, pyreqwest Title-Cased.
    lowered = {k.lower(): v for k, v in request.headers.items()}
    assert not verifies(OLD, request.body, {**lowered, "webhook-id": "e-other"})
    assert not verifies(OTHER, request.body, request.headers)


async def test_while_rotating_a_receiver_holding_either_secret_verifies(
    make_destination: MakeDestination,
) -> None:
    with WebhookReceiver([OLD]) as old, WebhookReceiver([NEW]) as new:
        await deliver(make_destination, (OLD, NEW), old.url, events=EVENTS[:1])
        await deliver(make_destination, (OLD, NEW), new.url, events=EVENTS[:1])
        (to_old,) = old.wait_for_requests(1)
        (to_new,) = new.wait_for_requests(1)
    assert to_old.verified
    assert to_new.verified
    signature = next(v for k, v in to_old.headers.items() if k.lower() == "webhook-signature")
    assert len(signature.split(" ")) == 2
    assert not verifies(OTHER, to_new.body, to_new.headers)


async def test_a_receiver_with_another_secret_refuses_the_request(
    make_destination: MakeDestination,
) -> None:
    with WebhookReceiver([OTHER]) as other:
        with pytest.raises(DeliveryError):
            await deliver(make_destination, OLD, other.url, events=EVENTS[:1])
        (request,) = other.wait_for_requests(1)
    assert not request.verified


def test_the_signature_covers_id_timestamp_and_exact_body() -> None:
    key = parse_secret(OLD)
    body = '{"a": "é"}'.encode()
    headers = signature_headers([key], message_id="e-1", timestamp=1_700_000_000, body=body)
    expected = base64.b64encode(
        hmac.new(key, b"e-1.1700000000." + body, "sha256").digest()
    ).decode()
    assert headers == {
        "webhook-id": "e-1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": f"v1,{expected}",
    }


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==", "must start with whsec_"),
        ("whsec_not*base64!" + "A" * 40, "is not valid base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "holds 5 bytes"),
    ],
)
def test_bad_secrets_are_refused_without_being_quoted(secret: str, says: str) -> None:
    with pytest.raises(ValueError, match="signing_secret") as caught:
        HttpOptions(url="http://127.0.0.1/hook", signing_secret=secret)
    assert says in str(caught.value)
    assert secret.removeprefix("whsec_") not in str(caught.value)


def test_an_empty_list_of_secrets_is_refused() -> None:
    with pytest.raises(ValueError, match="empty list"):
        HttpOptions(url="http://127.0.0.1/hook", signing_secret=())


def manifest(tmp_path: Path, secret_line: str) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            destinations:
              - name: hooks
                type: http
                url: http://127.0.0.1/hook
                {secret_line}
            """
        ),
        encoding="utf-8",
    )
    return path


TYPES = {"mock": mock.TYPE, "http": http.TYPE}


def test_check_names_file_destination_and_field_never_the_secret(tmp_path: Path) -> None:
    bad = "whsec_" + "A" * 10 + "!!" + "B" * 30
    path = manifest(tmp_path, 'signing_secret: ["${OLD}", "${BAD}"]')
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, environ={"OLD": OLD, "BAD": bad}, types=TYPES)
    message = str(caught.value)
    assert message.startswith(f"{path}: destination 'hooks': field 'signing_secret': ")
    assert "entry #2 is not valid base64" in message
    assert "AAAAAAAAAA" not in message
    assert "B" * 30 not in message


def test_a_secret_written_into_the_manifest_is_refused(tmp_path: Path) -> None:
    path = manifest(tmp_path, f"signing_secret: {OLD}")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, environ={}, types=TYPES)
    assert "field 'signing_secret'" in str(caught.value)
    assert "${NAME}" in str(caught.value)
    assert OLD.removeprefix("whsec_") not in str(caught.value)


def test_secrets_from_the_environment_are_loaded(tmp_path: Path) -> None:
    path = manifest(tmp_path, 'signing_secret: ["${OLD}", "${NEW}"]')
    loaded = load_manifest(path, environ={"OLD": OLD, "NEW": NEW}, types=TYPES)
    options = loaded.destinations[0].options
    assert isinstance(options, HttpOptions)
    assert options.signing_keys() == (b"o" * 32, b"n" * 32)
