"""How clients prove themselves to Kafka: the librdkafka TLS and SASL settings ingest, the
dispatcher and its commands accept, checked as a whole before any client is built.

Settings are named as in a manifest's ``kafka:`` section (``security_protocol`` ...); each has
a ``KAFKA_*`` environment variable, which wins when set and not empty. ``security_settings``
returns them as librdkafka keys (``security.protocol`` ...), the form
``eventlog.clients`` merges into every client's configuration. Only these keys are accepted:
anything else is an error, never passed through unseen. Messages never quote a password.
Pure, but for ``environment_security``, which reads this process's environment, and the check
that the certificate files can be read: librdkafka finds out only when a client is built,
which ``--check`` never does, and ingest and the dispatcher would then die with a traceback.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping

__all__ = [
    "ENVIRONMENT",
    "FILE_KEYS",
    "SECURITY_KEYS",
    "SecurityError",
    "environment_security",
    "security_settings",
]

SECURITY_KEYS = (
    "security_protocol",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password",
    "ssl_ca_location",
    "ssl_certificate_location",
    "ssl_key_location",
)
"""The accepted settings, as a manifest's ``kafka:`` section names them."""
ENVIRONMENT = {key: f"KAFKA_{key.upper()}" for key in SECURITY_KEYS}
"""Each setting's environment variable (``KAFKA_SECURITY_PROTOCOL`` ...)."""
SECRET_KEYS = ("sasl_password",)
"""Settings that a manifest may only give as ``${VAR}``."""

FILE_KEYS = ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location")
"""Settings that name a PEM file (the CA location may also be a directory of them)."""
_SYSTEM_CAS = "probe"
"""librdkafka's ``ssl.ca.location`` value for "look for the system's CA certificates"."""

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class SecurityError(ValueError):
    """A setting is unknown, missing or contradicts another; ``key`` names it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def security_settings(
    given: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """librdkafka settings from ``given`` (our names) overlaid by the ``KAFKA_*`` variables.

    ``{}`` when nothing is set (a PLAINTEXT cluster, librdkafka's default).
    """
    for key in given:
        if key not in SECURITY_KEYS:
            raise SecurityError(key, f"unknown key; accepted: {', '.join(SECURITY_KEYS)}")
    values = {key: value.strip() for key, value in given.items() if value.strip()}
    from_environment = set()
    for key, variable in ENVIRONMENT.items():
        if environ and (value := environ.get(variable, "").strip()):
            values[key] = value
            from_environment.add(key)
    if not values:
        return {}
    _complete(values)
    for key in FILE_KEYS:
        if key in values:
            shown = repr(values[key])
            if key in from_environment:
                shown += f" (from {ENVIRONMENT[key]})"
            _check_file(key, values[key], shown)
    return {key.replace("_", "."): value for key, value in values.items()}


def environment_security() -> dict[str, str]:
    """The settings the ``KAFKA_*`` variables give alone (for tools without a manifest, such
    as the benchmarks)."""
    return security_settings({}, os.environ)


def _complete(values: dict[str, str]) -> None:
    """Fill in the defaults (PLAINTEXT, SCRAM-SHA-512) and check the settings agree."""
    protocol = values.setdefault("security_protocol", "PLAINTEXT").upper()
    values["security_protocol"] = protocol
    if protocol not in PROTOCOLS:
        raise SecurityError(
            "security_protocol", f"{protocol!r} is not one of {', '.join(PROTOCOLS)}"
        )
    if protocol.startswith("SASL_"):
        mechanism = values.setdefault("sasl_mechanism", "SCRAM-SHA-512").upper()
        values["sasl_mechanism"] = mechanism
        if mechanism not in MECHANISMS:
            raise SecurityError(
                "sasl_mechanism", f"{mechanism!r} is not one of {', '.join(MECHANISMS)}"
            )
        for key in ("sasl_username", "sasl_password"):
            if key not in values:
                raise SecurityError(
                    key, f"missing; {protocol} needs it (or set {ENVIRONMENT[key]})"
                )
    else:
        for key in ("sasl_mechanism", "sasl_username", "sasl_password"):
            if key in values:
                raise SecurityError(key, f"only SASL_SSL or SASL_PLAINTEXT use it, not {protocol}")
    if not protocol.endswith("SSL"):
        for key in ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location"):
            if key in values:
                raise SecurityError(key, f"only SSL or SASL_SSL use it, not {protocol}")
    if ("ssl_certificate_location" in values) != ("ssl_key_location" in values):
        raise SecurityError(
            "ssl_key_location", "a client certificate needs its key and the key its certificate"
        )


def _check_file(key: str, path: str, shown: str) -> None:
    """``path`` is a file this process can read (for the CA location, a directory will do)."""
    cas = key == "ssl_ca_location"
    if cas and path == _SYSTEM_CAS:
        return
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode) and cas:
            os.listdir(path)
            return
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise SecurityError(key, f"{shown} is {kind}; it must be a PEM file")
        # Opened, not just stat'ed: permissions are what librdkafka will meet.
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise SecurityError(key, f"cannot read {shown}: {_why(exc)}") from None


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "no such file"
    if exc.errno == errno.EACCES:
        return "permission denied"
    return (exc.strerror or str(exc)).lower()
