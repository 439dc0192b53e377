"""The Kafka TLS and SASL settings as plain code: manifests' ``kafka:`` section, ``KAFKA_*``
variables, and what every client configuration then carries."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dispatcher.destinations import http, mock
from dispatcher.exceptions import ManifestError
from dispatcher.manifest import Manifest, load_manifest
from eventlog.clients import admin_config, consumer_config, producer_config
from eventlog.kafka_security import SecurityError, security_settings
from ingest import IngestSettings

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
    loaded = manifest(
        tmp_path,
        """
        bootstrap_servers: kafka.example:9096
        security_protocol: SASL_SSL
        sasl_mechanism: SCRAM-SHA-512
        sasl_username: dispatcher
        sasl_password: ${KAFKA_PASSWORD}
        ssl_ca_location: /etc/ssl/kafka-ca.pem
        """,
        {"KAFKA_PASSWORD": PASSWORD},
    )
    assert loaded.security == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "dispatcher",
        "sasl.password": PASSWORD,
        "ssl.ca.location": "/etc/ssl/kafka-ca.pem",
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
