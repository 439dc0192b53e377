"""The security controls together, as an operator runs them: ingest and the dispatcher as
real processes against a broker that authenticates (SASL_SSL, SCRAM-SHA-512), an API key on
ingest and a signing secret on the destination; then every output is searched for the three
secrets. And a wrong password: each process exits 1 with one line."""

from __future__ import annotations

import base64
import os
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ingest.api_keys import key_line, new_key
from tests.kafka_fixtures import free_port
from tests.security.conftest import SecureKafka
from tests.support.processes import BIN, start_dispatcher, start_ingest
from tests.support.topics import read_records
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EVENTS = 3


def manifest(
    path: Path, secure: SecureKafka, *, topic: str, url: str, password_variable: str
) -> Path:
    document: dict[str, Any] = {
        "topic": topic,
        "group_prefix": f"sec-{uuid.uuid4().hex[:8]}",
        "start_from": "earliest",
        "kafka": {
            "bootstrap_servers": secure.bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": secure.listener.username,
            "sasl_password": f"${{{password_variable}}}",
            "ssl_ca_location": str(secure.listener.ca_file),
        },
        "defaults": {"timeout": "2s"},
        "destinations": [
            {
                "name": "signed",
                "type": "http",
                "url": url,
                "signing_secret": "${HOOK_SECRET}",
            }
        ],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def ingest_security(secure: SecureKafka, password: str) -> dict[str, str]:
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": secure.listener.username,
        "KAFKA_SASL_PASSWORD": password,
        "KAFKA_SSL_CA_LOCATION": str(secure.listener.ca_file),
    }


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        return str(response.read().decode())


def test_events_go_through_sasl_ssl_signed_and_no_secret_appears_anywhere(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    topic = f"secure-{uuid.uuid4().hex[:10]}"
    api_key = new_key()
    keys = tmp_path / "keys.txt"
    keys.write_text(key_line("shop", api_key) + "\n")
    signing_secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    password = secure_kafka.listener.password
    logs = tmp_path / "logs"
    with WebhookReceiver([signing_secret]) as receiver:
        ingest = start_ingest(
            secure_kafka.bootstrap,
            topic,
            logs,
            partitions=3,
            env={**ingest_security(secure_kafka, password), "INGEST_API_KEYS_FILE": str(keys)},
        )
        dispatcher_env = {
            "SASL_PASSWORD": password,
            "HOOK_SECRET": signing_secret,
            "KAFKA_BOOTSTRAP_SERVERS": secure_kafka.bootstrap,  # the tests' own one would win
        }
        path = manifest(
            tmp_path / "m.yaml",
            secure_kafka,
            topic=topic,
            url=receiver.url,
            password_variable="SASL_PASSWORD",
        )
        metrics_port = free_port()
        dispatcher = start_dispatcher(
            [path], logs, env=dispatcher_env, extra_args=["--metrics-port", str(metrics_port)]
        )
        try:
            with httpx.Client(base_url=ingest.url, timeout=30) as client:
                refused = client.put("/events", json={"user_id": "u", "payload": "{}"})
                answers = [
                    client.put(
                        "/events",
                        json={"user_id": f"user-{n}", "payload": f'{{"n": {n}}}'},
                        headers={"Authorization": f"Bearer {api_key}"},
                    )
                    for n in range(EVENTS)
                ]
            assert refused.status_code == 401
            assert [a.status_code for a in answers] == [202] * EVENTS
            try:
                requests = receiver.wait_for_requests(EVENTS, timeout=60)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; dispatcher:\n{dispatcher.log()[-3000:]}") from None
            assert all(request.verified for request in requests)
            ingest_metrics = fetch(f"{ingest.url}/metrics")
            dispatcher_metrics = fetch(f"http://127.0.0.1:{metrics_port}/metrics")
            status = subprocess.run(
                [str(BIN / "dispatcher"), "status", "--manifest", str(path)],
                capture_output=True,
                text=True,
                env={**os.environ, **dispatcher_env},
                timeout=60,
                check=False,
            )
        finally:
            codes = (ingest.stop(), dispatcher.stop())
    assert codes == (0, 0), ingest.log()[-2000:] + dispatcher.log()[-2000:]
    assert status.returncode == 0, status.stderr
    assert "signed" in status.stdout

    # The events went through the SASL_SSL listener, each with its key's name.
    records = read_records(secure_kafka.plaintext_bootstrap, topic, EVENTS)
    assert len(records) == EVENTS
    assert all(("ingest-key", b"shop") in (r.headers() or []) for r in records)
    admitted = [
        line
        for line in ingest_metrics.splitlines()
        if line.startswith("ingest_key_requests_total{")
        and 'key="shop"' in line
        and 'outcome="admitted"' in line
    ]
    assert [line.rsplit(" ", 1)[1] for line in admitted] == ["3.0"]

    outputs = {
        "ingest log": ingest.log(),
        "dispatcher log": dispatcher.log(),
        "ingest /metrics": ingest_metrics,
        "dispatcher /metrics": dispatcher_metrics,
        "dispatcher status": status.stdout + status.stderr,
    }
    secrets = {
        "the SASL password": password,
        "the API key": api_key,
        "the signing secret": signing_secret.removeprefix("whsec_"),
    }
    for where, text in outputs.items():
        assert text.strip(), f"{where} is empty: nothing was searched"
        for what, secret in secrets.items():
            assert secret not in text, f"{what} appears in the {where}"


def test_a_wrong_password_stops_ingest_with_one_line(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(BIN / "ingest"), "--port", str(free_port()), "--bootstrap-servers",
         secure_kafka.bootstrap],
        capture_output=True,
        text=True,
        env={**os.environ, **ingest_security(secure_kafka, "not-the-password")},
        timeout=60,
        check=False,
    )  # fmt: skip
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: kafka refused the credentials at 127.0.0.1:")
    assert "SASL authentication error" in lines[0]
    assert "not-the-password" not in lines[0]


def test_a_wrong_password_stops_the_dispatcher_with_one_line(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    path = manifest(
        tmp_path / "m.yaml",
        secure_kafka,
        topic=f"secure-{uuid.uuid4().hex[:10]}",
        url="http://127.0.0.1:9/hook",
        password_variable="SASL_PASSWORD",
    )
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    dispatcher = start_dispatcher(
        [path],
        tmp_path,
        env={
            "SASL_PASSWORD": "not-the-password",
            "HOOK_SECRET": secret,
            "KAFKA_BOOTSTRAP_SERVERS": secure_kafka.bootstrap,
        },
    )
    assert dispatcher.process.wait(60) == 1
    lines = dispatcher.log().strip().splitlines()
    about = [line for line in lines if "credentials" in line or "SASL" in line]
    assert len(about) == 1, lines
    assert "kafka refused the credentials at 127.0.0.1:" in about[0]
    assert not [line for line in lines if line.startswith("%")], "librdkafka noise"
    assert "not-the-password" not in dispatcher.log()
