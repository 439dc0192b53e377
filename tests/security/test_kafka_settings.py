"""The Kafka TLS and SASL settings as plain code: manifests' ``kafka:`` section, ``KAFKA_*``
variables, and what every client configuration then carries."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dispatcher.destinations import http, mock
from dispatcher.exceptions import ManifestError
from dispatcher.manifest import Manifest, load_manifest
from eventlog.clients import admin_config, consumer_config, producer_config
from eventlog.kafka_security import SecurityError, security_settings
from ingest import IngestSettings
from tests.kafka_fixtures import free_port

PASSWORD = "pa55-w0rd-value"
TYPES = {"mock": mock.TYPE, "http": http.TYPE}


def manifest(tmp_path: Path, kafka: str, environ: dict[str, str] | None = None) -> Manifest:
    path = tmp_path / "manifest.yaml"
    path.write_text(
        "kafka:\n"
        + textwrap.indent(textwrap.dedent(kafka), "  ")
        + "destinations:\n  - {name: sink, type: mock, behavior: succeed}\n"
    )
    return load_manifest(path, environ=environ or {}, types=TYPES)


def error(tmp_path: Path, kafka: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ManifestError) as caught:
        manifest(tmp_path, kafka, environ)
    return str(caught.value)


def test_a_sasl_ssl_section_becomes_librdkafka_settings(tmp_path: Path) -> None:
    ca = tmp_path / "kafka-ca.pem"
    ca.write_text("a CA certificate\n")
    loaded = manifest(
        tmp_path,
        f"""
        bootstrap_servers: kafka.example:9096
        security_protocol: SASL_SSL
        sasl_mechanism: SCRAM-SHA-512
        sasl_username: dispatcher
        sasl_password: ${{KAFKA_PASSWORD}}
        ssl_ca_location: {ca}
        """,
        {"KAFKA_PASSWORD": PASSWORD},
    )
    assert loaded.security == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "dispatcher",
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(ca),
    }


def test_no_section_is_plaintext_and_adds_nothing(tmp_path: Path) -> None:
    assert manifest(tmp_path, "bootstrap_servers: k:9092\n").security == {}


def test_the_environment_wins_over_the_manifest(tmp_path: Path) -> None:
    loaded = manifest(
        tmp_path,
        "security_protocol: SSL\n",
        {
            "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "KAFKA_SASL_USERNAME": "env-user",
            "KAFKA_SASL_PASSWORD": PASSWORD,
        },
    )
    assert loaded.security == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "env-user",
        "sasl.password": PASSWORD,
    }


def test_a_password_written_into_the_manifest_is_refused_unquoted(tmp_path: Path) -> None:
    message = error(
        tmp_path, f"security_protocol: SASL_SSL\nsasl_username: u\nsasl_password: {PASSWORD}\n"
    )
    assert "field 'kafka.sasl_password'" in message
    assert "${NAME}" in message
    assert PASSWORD not in message


@pytest.mark.parametrize(
    ("kafka", "says"),
    [
        ("ssl_keystore_location: /x\n", "field 'kafka.ssl_keystore_location': unknown key"),
        ("security_protocol: TLS\n", "field 'kafka.security_protocol': 'TLS' is not one of"),
        ("security_protocol: SASL_SSL\nsasl_username: u\n", "kafka.sasl_password': missing"),
        (
            "security_protocol: SASL_SSL\nsasl_mechanism: GSSAPI\nsasl_username: u\n"
            "sasl_password: ${P}\n",
            "kafka.sasl_mechanism': 'GSSAPI' is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        ),
        ("sasl_username: u\n", "kafka.sasl_username': only SASL_SSL or SASL_PLAINTEXT use it"),
        (
            "security_protocol: SASL_PLAINTEXT\nssl_ca_location: /ca\nsasl_username: u\n"
            "sasl_password: ${P}\n",
            "kafka.ssl_ca_location': only SSL or SASL_SSL use it",
        ),
        ("security_protocol: SSL\nssl_certificate_location: /c\n", "a client certificate needs"),
        ("security_protocol: 7\n", "kafka.security_protocol': expected a string"),
    ],
)
def test_mistakes_are_named_and_the_password_never_shown(
    tmp_path: Path, kafka: str, says: str
) -> None:
    message = error(tmp_path, kafka, {"P": PASSWORD})
    assert says in message
    assert PASSWORD not in message


def test_every_client_configuration_carries_the_settings() -> None:
    security = security_settings(
        {"security_protocol": "SASL_SSL", "sasl_username": "u", "sasl_password": PASSWORD}
    )
    for config in (
        producer_config("k:9092", security=security),
        consumer_config("k:9092", "group", security=security),
        admin_config("k:9092", security=security),
    ):
        assert {k: config[k] for k in security} == security
    assert "security.protocol" not in producer_config("k:9092")


def test_unknown_keys_are_errors_not_passed_through() -> None:
    with pytest.raises(SecurityError, match="unknown key"):
        security_settings({"enable_ssl_certificate_verification": "false"})


def test_the_password_is_not_in_a_manifests_or_settings_repr(tmp_path: Path) -> None:
    loaded = manifest(
        tmp_path,
        "security_protocol: SASL_SSL\nsasl_username: u\nsasl_password: ${P}\n",
        {"P": PASSWORD},
    )
    settings = IngestSettings(kafka_security=dict(loaded.security))
    assert PASSWORD not in repr(loaded)
    assert PASSWORD not in repr(settings)


def test_tools_without_a_manifest_take_the_kafka_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from eventlog.kafka_security import environment_security  # noqa: PLC0415

    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "bench")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "pw")
    settings = environment_security()
    assert settings["security.protocol"] == "SASL_SSL"
    assert settings["sasl.username"] == "bench"
    monkeypatch.delenv("KAFKA_SECURITY_PROTOCOL")
    monkeypatch.delenv("KAFKA_SASL_USERNAME")
    monkeypatch.delenv("KAFKA_SASL_PASSWORD")
    assert environment_security() == {}


@pytest.mark.parametrize("key", ["ssl_ca_location", "ssl_certificate_location", "ssl_key_location"])
def test_a_certificate_file_that_cannot_be_read_is_named_at_load_time(
    tmp_path: Path, key: str
) -> None:
    readable = tmp_path / "readable.pem"
    readable.write_text("PEM\n")
    files = {"ssl_certificate_location": readable, "ssl_key_location": readable}
    files[key] = tmp_path / "no-such.pem"
    kafka = "security_protocol: SSL\n" + "".join(f"{k}: {v}\n" for k, v in files.items())
    message = error(tmp_path, kafka)
    assert message.startswith(f"{tmp_path / 'manifest.yaml'}: field 'kafka.{key}': "), message
    assert str(tmp_path / "no-such.pem") in message
    assert "no such file" in message


def test_a_directory_is_no_certificate_but_may_hold_the_cas(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("PEM\n")
    message = error(
        tmp_path,
        f"security_protocol: SSL\nssl_certificate_location: {tmp_path}\nssl_key_location: {key}\n",
    )
    assert f"field 'kafka.ssl_certificate_location': '{tmp_path}' is a directory" in message
    # librdkafka reads a directory of CA certificates, or the system's with "probe".
    for ca in (str(tmp_path), "probe"):
        loaded = manifest(tmp_path, f"security_protocol: SSL\nssl_ca_location: {ca}\n")
        assert loaded.security["ssl.ca.location"] == ca


def test_a_path_from_the_environment_is_named_with_its_variable(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        "bootstrap_servers: k:9092\n",
        {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": "/no/such/ca.pem"},
    )
    assert "field 'kafka.ssl_ca_location'" in message
    assert "'/no/such/ca.pem' (from KAFKA_SSL_CA_LOCATION)" in message


def run(command: list[str], **environ: str) -> subprocess.CompletedProcess[str]:
    """``command`` as an operator runs it, with ``environ`` added; nothing listens at the
    bootstrap address (a bad setting must be caught before Kafka is asked)."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", **environ}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def bad_ca_manifest(tmp_path: Path, ca: Path) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(
        "kafka:\n  security_protocol: SSL\n"
        f"  ssl_ca_location: {ca}\n"
        "destinations:\n  - {name: sink, type: mock, behavior: succeed}\n"
    )
    return path


def test_dispatcher_check_refuses_a_ca_file_that_is_not_there(tmp_path: Path) -> None:
    path = bad_ca_manifest(tmp_path, tmp_path / "no-such-ca.pem")
    result = run([sys.executable, "-m", "dispatcher", "--manifest", str(path), "--check"])
    assert result.returncode == 1, result.stdout
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: field 'kafka.ssl_ca_location': cannot read "
        f"'{tmp_path / 'no-such-ca.pem'}': no such file"
    ]


def test_ingest_refuses_a_ca_file_that_is_not_there_in_one_line() -> None:
    result = run(
        [sys.executable, "-m", "ingest", "--port", str(free_port())],
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CA_LOCATION="/no/such/ca.pem",
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: --kafka-ssl-ca-location: cannot read '/no/such/ca.pem' "
        "(from KAFKA_SSL_CA_LOCATION): no such file"
    ], result.stderr
    assert "Traceback" not in result.stderr


def not_a_certificate(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("this is not a certificate\n")
    return path


def test_ingest_stops_with_one_line_when_kafka_cannot_use_the_ca_file(tmp_path: Path) -> None:
    ca = not_a_certificate(tmp_path)
    result = run(
        [sys.executable, "-m", "ingest", "--port", str(free_port())],
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CA_LOCATION=str(ca),
    )
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 1, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: kafka client settings refused: ")
    assert "ssl.ca.location" in lines[0]


def test_the_dispatcher_stops_with_one_line_when_kafka_cannot_use_the_ca_file(
    tmp_path: Path,
) -> None:
    path = bad_ca_manifest(tmp_path, not_a_certificate(tmp_path))
    result = run([sys.executable, "-m", "dispatcher", "--manifest", str(path)])
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    about = [line for line in output.splitlines() if "ssl.ca.location" in line]
    assert len(about) == 1, output
    assert "ERROR" in about[0]
    assert "kafka client settings refused: " in about[0]


@pytest.mark.parametrize(
    "command", [["status"], ["dead-letters", "--destination", "sink"]], ids=lambda c: c[0]
)
def test_operator_commands_stop_with_one_line_when_kafka_cannot_use_the_ca_file(
    tmp_path: Path, command: list[str]
) -> None:
    path = bad_ca_manifest(tmp_path, not_a_certificate(tmp_path))
    result = run([sys.executable, "-m", "dispatcher", *command, "--manifest", str(path)])
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 1, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: kafka client settings refused: ")
