"""A ``SASL_SSL`` listener for the native broker, as managed Kafka services offer: TLS with a
throwaway CA, SCRAM-SHA-512 logins, so clients' security settings are tested against a broker
that really authenticates.

``SecureListener.prepare()`` makes the CA and the broker's certificate with ``openssl`` (PEM
files: Kafka reads a PEM keystore and truststore directly, KIP-651) and returns the extra
``server.properties`` for ``NativeBroker(extra_config=...)``; the broker keeps its PLAINTEXT
listener, which ``create_user`` uses to add the SCRAM user once the broker is up (the admin
API's ``alter_user_scram_credentials``, what ``StorageTool format --add-scram`` does at format
time). ``client_settings`` are the librdkafka settings a client connects with.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from localkafka.exceptions import BrokerError, MissingPrerequisiteError

__all__ = ["Certificates", "SecureListener", "make_certificates"]

_DAYS = "2"
_SCRAM_ITERATIONS = 4096
_LISTENER = "SASL_SSL"
_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class SecureListener:
    """A ``SASL_SSL`` listener on ``127.0.0.1:<port>`` with one SCRAM-SHA-512 user."""

    port: int
    directory: Path
    """Where the CA, the broker's certificate and key are written."""
    username: str = "alice"
    password: str = "alice-secret"  # noqa: S105 - a throwaway broker's throwaway user

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA certificate clients trust (``ssl.ca.location``)."""
        return self.directory / "ca.pem"

    @property
    def keystore_file(self) -> Path:
        return self.directory / "broker-keystore.pem"

    def prepare(self, *, plaintext_port: int, controller_port: int) -> dict[str, str]:
        """Make the certificates; the broker settings that add this listener to the others."""
        self.make_certificates()
        return {
            "listeners": f"PLAINTEXT://127.0.0.1:{plaintext_port},"
            f"CONTROLLER://127.0.0.1:{controller_port},{_LISTENER}://127.0.0.1:{self.port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{plaintext_port},"
            f"{_LISTENER}://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
            f"{_LISTENER}:{_LISTENER}",
            "sasl.enabled.mechanisms": _MECHANISM,
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": _MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": str(self.keystore_file),
        }

    def make_certificates(self) -> None:
        """The CA and the broker's certificate, and the PEM keystore holding the latter."""
        made = make_certificates(self.directory)
        # A PEM keystore: the (unencrypted PKCS#8) key, then the chain.
        self.keystore_file.write_text(
            made.key.read_text() + made.certificate.read_text() + made.ca.read_text()
        )
        self.keystore_file.chmod(0o600)

    def create_user(self, plaintext_bootstrap: str, *, timeout: float = 30.0) -> None:
        """Add the SCRAM-SHA-512 user (through the PLAINTEXT listener)."""
        admin = AdminClient({"bootstrap.servers": plaintext_bootstrap, "log_level": 0})
        upsert = UserScramCredentialUpsertion(
            self.username,
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, _SCRAM_ITERATIONS),
            self.password.encode(),
        )
        futures = admin.alter_user_scram_credentials([upsert], request_timeout=timeout)
        for future in futures.values():
            future.result(timeout)

    def client_settings(self, *, password: str | None = None) -> dict[str, str]:
        """librdkafka settings for this listener (``password`` instead of the right one)."""
        return {
            "security.protocol": _LISTENER,
            "sasl.mechanism": _MECHANISM,
            "sasl.username": self.username,
            "sasl.password": self.password if password is None else password,
            "ssl.ca.location": str(self.ca_file),
        }


@dataclass(frozen=True)
class Certificates:
    """PEM files made by ``make_certificates``."""

    ca: Path
    """The throwaway CA's certificate: what clients trust."""
    certificate: Path
    """The server's certificate, for 127.0.0.1 and localhost, signed by the CA."""
    key: Path
    """The server certificate's key (unencrypted PKCS#8)."""


def make_certificates(directory: Path) -> Certificates:
    """A CA, and a server certificate for 127.0.0.1 and localhost signed by it (2 days each)."""
    directory.mkdir(parents=True, exist_ok=True)
    d = directory
    made = Certificates(ca=d / "ca.pem", certificate=d / "server.pem", key=d / "server.key")
    extensions = d / "server.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", _DAYS,
        "-keyout", str(d / "ca.key"), "-out", str(made.ca),
        "-subj", "/CN=localkafka throwaway CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(made.key), "-out", str(d / "server.csr"),
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(d / "server.csr"), "-days", _DAYS,
        "-CA", str(made.ca), "-CAkey", str(d / "ca.key"), "-CAcreateserial",
        "-extfile", str(extensions), "-out", str(made.certificate),
    )  # fmt: skip
    return made


def _openssl(*arguments: str) -> None:
    try:
        result = subprocess.run(
            ["openssl", *arguments], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise MissingPrerequisiteError(
            "openssl is needed to make the SASL_SSL listener's certificates"
            " (apt-get install openssl)"
        ) from None
    if result.returncode != 0:
        raise BrokerError(f"openssl {arguments[0]} failed:\n{result.stderr[-2000:]}")
