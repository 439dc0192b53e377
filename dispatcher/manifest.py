"""Manifests: which destinations a dispatcher runs, read from YAML and checked whole at start-up.

A manifest names the events topic, the dead-letter topic, the consumer-group prefix and the
Kafka cluster, the defaults every destination inherits, and the destinations themselves; the
schema is in ``docs/manifest.md``. Loading is pure apart from reading the files: any problem is
one ``ManifestError`` naming the file, the destination and the field, before a consumer starts.

``${VAR}`` in a destination's string values (and in ``kafka.bootstrap_servers``) is replaced from
the environment given; ``$${`` stands for a literal ``${``. Substituted values may be secrets, so
error messages show the ``${VAR}`` reference instead of the value; values they quote are cut
to 80 characters. The file itself (a regular file, bounded, UTF-8 text, YAML without alias
bombs) is ``manifest_file``'s to read; ``retention_warnings`` finds what is valid but risky.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeVar, cast, get_args, get_origin

import msgspec

from dispatcher.breaker import BreakerPolicy
from dispatcher.destinations import TYPES, DestinationType
from dispatcher.durations import Duration, decode_hook, format_duration, parse_duration
from dispatcher.exceptions import ManifestError
from dispatcher.manifest_file import read_document
from dispatcher.parking import ParkingPolicy
from dispatcher.retry import RetryPolicy
from eventlog.kafka_security import SECRET_KEYS as _KAFKA_SECRET_KEYS
from eventlog.kafka_security import SECURITY_KEYS, SecurityError, security_settings
from eventlog.topics import RETENTION_24H_MS, default_min_insync_replicas

__all__ = [
    "EVENTS_RETENTION",
    "MAX_DESTINATIONS",
    "DestinationSpec",
    "Manifest",
    "load_manifest",
    "load_manifests",
    "retention_warnings",
]

EVENTS_RETENTION = RETENTION_24H_MS / 1000
"""Seconds the events topic keeps events (``eventlog.topics``), for ``retention_warnings``."""

StartFrom = Literal["earliest", "latest"]

_TOP_KEYS = (
    "topic",
    "dead_letter_topic",
    "group_prefix",
    "start_from",
    "kafka",
    "defaults",
    "destinations",
)
_DEFAULT_KEYS = (
    "timeout",
    "retry",
    "breaker",
    "parking",
    "concurrency",
    "max_buffered",
    "max_buffered_bytes",
)
_COMMON_KEYS = ("name", "type", *_DEFAULT_KEYS)
_SECRET_KEYS = ("signing_secret",)
"""Destination keys that hold secrets: written only as ``${VAR}``, so no manifest holds one."""
_BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
_REPLICATION_ENV = "KAFKA_REPLICATION_FACTOR"
_MIN_INSYNC_ENV = "KAFKA_MIN_INSYNC_REPLICAS"
_KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_KAFKA_NAME_RULE = "use 1 to 249 letters, digits, '.', '_' or '-'"
_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")
_WHOLE_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_MSGSPEC_AT = re.compile(r"(?P<problem>.*?) - at `(?P<key>key` in `)?\$(?P<path>[^`]*)`", re.S)

# A quoted value in a message (as repr() writes it), to shorten the long ones.
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
_QUOTE_CHARS = 80

_Struct = TypeVar("_Struct", bound=msgspec.Struct)


@dataclass(frozen=True, slots=True)
class DestinationSpec:
    """One destination of a manifest, checked, with the manifest's defaults applied."""

    name: str
    """Unique across all manifests of a process; part of the consumer group id and of logs."""
    type: str
    """Key of the destination type in ``TYPES`` (``mock``, ``http``)."""
    options: msgspec.Struct
    """The type's own keys: an instance of ``TYPES[type].options``."""
    timeout: float
    """Seconds one delivery attempt may take before it counts as failed."""
    retry: RetryPolicy
    """How failed attempts are retried before the event goes to the dead-letter topic."""
    concurrency: int = 64
    """Events of different users in flight at once (one user's events go one at a time)."""
    max_buffered: int = 5000
    """Events fetched but unfinished (in flight or waiting) before fetching pauses; each
    partition gets its share. Chosen by benchmark (docs/manifest.md): the smallest that kept
    every slot busy at concurrency 256 was 2,000; this leaves room for users with several
    events waiting."""
    max_buffered_bytes: int = 64 * 1024 * 1024
    """Bytes of fetched but unfinished events before fetching pauses (whichever comes first)."""
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    """When the destination counts as down (its circuit breaker)."""
    parking: ParkingPolicy = field(default_factory=ParkingPolicy)
    """What happens to users whose events exhaust their retries (ordered parking)."""

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError("timeout must be more than 0 seconds")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.max_buffered < self.concurrency:
            raise ValueError("max_buffered must be at least concurrency")


@dataclass(frozen=True, slots=True)
class Manifest:
    """One manifest file: where events come from and go to, and the destinations it runs."""

    path: Path
    """The file it was read from, as given."""
    topic: str
    """The events topic every destination consumes."""
    dead_letter_topic: str
    """Where events go that a destination could not take after all retries."""
    group_prefix: str
    """Consumer groups are ``<group_prefix>.<destination name>``."""
    start_from: StartFrom
    """Where a destination's consumer group starts when it has no committed offsets yet."""
    bootstrap_servers: str
    """Kafka brokers, ``host:port[,host:port...]``."""
    destinations: tuple[DestinationSpec, ...]
    """In file order; never empty."""
    replication_factor: int = 1
    """Copies of each partition of the topics the dispatcher creates (events, dead letters);
    3 in production. ``KAFKA_REPLICATION_FACTOR`` overrides it."""
    min_insync_replicas: int = 1
    """``min.insync.replicas`` of the topics the dispatcher creates; by default one less than
    ``replication_factor``, within 1..2, as ingest's (2 with 3 replicas).
    ``KAFKA_MIN_INSYNC_REPLICAS`` overrides it."""
    security: Mapping[str, str] = field(default_factory=dict, repr=False)
    """librdkafka TLS and SASL settings (``security.protocol`` ...) every client of this
    manifest's cluster gets (``eventlog.kafka_security``); empty for a PLAINTEXT cluster. Left
    out of ``repr()``: it may hold the SASL password."""

    def group_id(self, destination: DestinationSpec) -> str:
        """The consumer group of ``destination``: ``<group_prefix>.<name>``."""
        return f"{self.group_prefix}.{destination.name}"


def load_manifests(
    paths: Sequence[Path],
    *,
    environ: Mapping[str, str],
    types: Mapping[str, DestinationType] = TYPES,
) -> tuple[Manifest, ...]:
    """Load the manifests of one process; destination names must be unique across all of them."""
    if not paths:
        raise ManifestError("no manifest given; pass at least one manifest file")
    manifests = tuple(load_manifest(path, environ=environ, types=types) for path in paths)
    _check_names_across(manifests)
    _check_process_size(manifests)
    return manifests


def load_manifest(
    path: Path,
    *,
    environ: Mapping[str, str],
    types: Mapping[str, DestinationType] = TYPES,
) -> Manifest:
    """Read and check one manifest file; every problem raises ``ManifestError``."""
    where = _Where(path)
    top = read_document(path, lambda problem: where.error(None, problem))
    if not isinstance(top, dict):
        raise where.error(None, f"the top level must be a mapping of keys, got {_kind(top)}")
    _reject_unknown_keys(top, _TOP_KEYS, where, None, owner="the top level")
    topic = _kafka_name(top.get("topic", "events"), where, "topic")
    dead_letter_topic = _kafka_name(
        top.get("dead_letter_topic", f"{topic}.dead-letter"), where, "dead_letter_topic"
    )
    if dead_letter_topic == topic:
        raise where.error("dead_letter_topic", f"must differ from topic {topic!r}")
    if "destinations" not in top:
        raise where.error("destinations", "missing; list at least one destination")
    defaults = _mapping(top.get("defaults", {}), where, "defaults")
    _reject_unknown_keys(defaults, _DEFAULT_KEYS, where, "defaults", owner="defaults")
    kafka = _kafka(top.get("kafka", {}), where, environ)
    return Manifest(
        path=path,
        topic=topic,
        dead_letter_topic=dead_letter_topic,
        group_prefix=_kafka_name(top.get("group_prefix", "event-delivery"), where, "group_prefix"),
        start_from=_start_from(top.get("start_from", "earliest"), where),
        bootstrap_servers=kafka.bootstrap_servers,
        replication_factor=kafka.replication_factor,
        min_insync_replicas=kafka.min_insync_replicas,
        security=kafka.security,
        destinations=_destinations(
            top["destinations"],
            where,
            _common(defaults, where, "defaults", _BUILT_IN),
            environ,
            types,
        ),
    )


@dataclass(frozen=True, slots=True)
class _Where:
    """Where a problem is, for its message, and which substituted values it must not show."""

    file: Path
    destination: str | None = None
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Environment variable -> the value substituted for its ``${VAR}``."""

    def error(self, field: str | None, problem: str) -> ManifestError:
        """``<file>: destination '<name>': field '<field>': <problem>``, secrets hidden."""
        return ManifestError(self.describe(field, problem))

    def describe(self, field: str | None, problem: str) -> str:
        """The text of ``error``: for a warning, which is not an exception."""
        parts = [self.destination, field and f"field '{field}'", problem]
        message = self.hide_secrets(": ".join(filter(None, parts)))
        return f"{self.file}: {_shorten_quotes(message)}"

    def hide_secrets(self, text: str) -> str:
        """``text`` with every substituted value replaced by its ``${VAR}`` reference."""
        for variable, value in sorted(self.secrets.items(), key=lambda item: -len(item[1])):
            if value:
                text = text.replace(value, f"${{{variable}}}")
        return text

    def cause(self, exc: BaseException) -> BaseException | None:
        """``exc`` to chain to an error, or ``None`` when its text shows a substituted value."""
        return exc if self.hide_secrets(str(exc)) == str(exc) else None


def _shorten_quotes(message: str) -> str:
    """``message`` with each quoted value longer than 80 characters cut to its first 80 + "…".

    Done last, once secrets are hidden: cutting first could leave a secret's prefix behind.
    """

    def shorten(match: re.Match[str]) -> str:
        quoted = match[0]
        return quoted if len(quoted) <= _QUOTE_CHARS + 2 else quoted[: _QUOTE_CHARS + 1] + "…"

    return _QUOTED.sub(shorten, message)


@dataclass(frozen=True, slots=True)
class _Common:
    """The keys every destination has: its own, else from ``defaults``, else built in."""

    timeout: Duration
    layered: Mapping[str, Mapping[object, object]]
    """``retry``, ``breaker`` and ``parking`` keys as written, each laid key by key over the
    inherited ones."""
    retry: RetryPolicy
    breaker: BreakerPolicy
    parking: ParkingPolicy
    concurrency: int
    max_buffered: int
    max_buffered_bytes: int


_BUILT_IN = _Common(
    Duration(1.0),
    {},
    RetryPolicy(),
    BreakerPolicy(),
    ParkingPolicy(),
    concurrency=64,
    max_buffered=5000,
    max_buffered_bytes=64 * 1024 * 1024,
)
_POLICIES: tuple[tuple[str, type[msgspec.Struct]], ...] = (
    ("retry", RetryPolicy),
    ("breaker", BreakerPolicy),
    ("parking", ParkingPolicy),
)


def _common(
    section: Mapping[object, object], where: _Where, prefix: str | None, inherited: _Common
) -> _Common:
    """The common keys of ``section`` (``defaults`` or a destination) over ``inherited``."""

    def at(key: str) -> str:
        return ".".join(filter(None, [prefix, key]))

    layered: dict[str, Mapping[object, object]] = {}
    policies: dict[str, msgspec.Struct] = {}
    for key, struct in _POLICIES:
        below = inherited.layered.get(key, {})
        layered[key] = {**below, **_mapping(section.get(key, {}), where, at(key))}
        merged = f" ({key} is laid key by key over defaults.{key})" if below else ""
        policies[key] = _convert(layered[key], struct, where, at(key), owner=key, note=merged)
    concurrency = _count(
        section.get("concurrency", inherited.concurrency), where, at("concurrency")
    )
    max_buffered = _count(
        section.get("max_buffered", inherited.max_buffered), where, at("max_buffered")
    )
    if max_buffered < concurrency:
        raise where.error(
            at("max_buffered"),
            f"{max_buffered} is below concurrency {concurrency}; the buffer holds the events in"
            f" flight too, so make it at least {concurrency}",
        )
    return _Common(
        timeout=_timeout(section["timeout"], where, at("timeout"))
        if "timeout" in section
        else inherited.timeout,
        layered=layered,
        retry=cast(RetryPolicy, policies["retry"]),
        breaker=cast(BreakerPolicy, policies["breaker"]),
        parking=cast(ParkingPolicy, policies["parking"]),
        concurrency=concurrency,
        max_buffered=max_buffered,
        max_buffered_bytes=_count(
            section.get("max_buffered_bytes", inherited.max_buffered_bytes),
            where,
            at("max_buffered_bytes"),
        ),
    )


def _destinations(
    raw: object,
    where: _Where,
    defaults: _Common,
    environ: Mapping[str, str],
    types: Mapping[str, DestinationType],
) -> tuple[DestinationSpec, ...]:
    if not isinstance(raw, list):
        raise where.error("destinations", f"expected a list of destinations, got {_kind(raw)}")
    if not raw:
        raise where.error("destinations", "empty; list at least one destination")
    specs = tuple(
        _destination(entry, number, file=where, defaults=defaults, environ=environ, types=types)
        for number, entry in enumerate(raw, start=1)
    )
    first: dict[str, int] = {}
    for number, spec in enumerate(specs, start=1):
        if (earlier := first.setdefault(spec.name, number)) != number:
            raise replace(where, destination=f"destination {spec.name!r}").error(
                "name",
                f"destinations #{earlier} and #{number} are both named {spec.name!r}; names must"
                " be unique (each names a consumer group)",
            )
    return specs


def _destination(
    raw: object,
    number: int,
    *,
    file: _Where,
    defaults: _Common,
    environ: Mapping[str, str],
    types: Mapping[str, DestinationType],
) -> DestinationSpec:
    where = replace(file, destination=_label(raw, number))
    secrets: dict[str, str] = {}
    written = _mapping(raw, where, None)
    for key in _SECRET_KEYS:
        if key in written:
            _require_references(written[key], where, key)
    entry = {
        key: _expand(value, str(key), where, environ, secrets) for key, value in written.items()
    }
    where = replace(where, secrets=secrets)
    name = _kafka_name(entry.get("name"), where, "name")
    type_name, kind = _destination_type(entry.get("type"), where, types)
    option_keys = tuple(f.encode_name for f in msgspec.structs.fields(kind.options))
    owner = f"a destination of type {type_name!r}"
    _reject_unknown_keys(entry, (*_COMMON_KEYS, *option_keys), where, None, owner=owner)
    common = _common(entry, where, None, inherited=defaults)
    options = {key: value for key, value in entry.items() if key not in _COMMON_KEYS}
    return DestinationSpec(
        name=name,
        type=type_name,
        options=_convert(options, kind.options, where, None, owner=f"type {type_name!r}"),
        timeout=common.timeout,
        retry=common.retry,
        concurrency=common.concurrency,
        max_buffered=common.max_buffered,
        max_buffered_bytes=common.max_buffered_bytes,
        breaker=common.breaker,
        parking=common.parking,
    )


def _label(raw: object, number: int) -> str:
    """How messages name a destination: by its name as written, else by its position."""
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"destination {name!r}" if isinstance(name, str) and name else f"destination #{number}"


def _destination_type(
    value: object, where: _Where, types: Mapping[str, DestinationType]
) -> tuple[str, DestinationType]:
    known = f"known types: {', '.join(sorted(types))}"
    if value is None:
        raise where.error("type", f"missing; {known}")
    if not isinstance(value, str) or value not in types:
        raise where.error("type", f"unknown type {value!r}; {known}")
    return value, types[value]


def _require_references(value: object, where: _Where, field: str) -> None:
    """``value`` (a string or a list of them) is only ``${VAR}`` references, never a secret."""
    values = value if isinstance(value, list) else [value]
    for number, item in enumerate(values, start=1):
        at = f"{field}[{number - 1}]" if isinstance(value, list) else field
        if not isinstance(item, str) or not _WHOLE_REFERENCE.fullmatch(item.strip()):
            # the value is not quoted: it may be the secret itself
            raise where.error(
                at,
                "a secret must come from the environment; write ${NAME} and set NAME, not the"
                " secret itself",
            )


def _expand(
    value: object, field: str, where: _Where, environ: Mapping[str, str], used: dict[str, str]
) -> object:
    """``value`` with ``${VAR}`` replaced in every string inside it; ``used`` learns the values."""
    if isinstance(value, dict):
        return {k: _expand(v, f"{field}.{k}", where, environ, used) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{field}[{i}]", where, environ, used) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        variable = match.group(1)
        if match.group(0) == "$${":
            return "${"
        if variable is None:
            raise where.error(
                field, "malformed '${'; write ${NAME} (letters, digits, _) or $${ for a literal ${"
            )
        if variable not in environ:
            raise where.error(
                field,
                f"environment variable {variable} is not set; set it, or write $${{ for a"
                " literal ${",
            )
        used[variable] = environ[variable]
        return environ[variable]

    return _REFERENCE.sub(substitute, value)


@dataclass(frozen=True, slots=True)
class _Kafka:
    bootstrap_servers: str
    replication_factor: int
    min_insync_replicas: int
    security: Mapping[str, str]


_KAFKA_KEYS = ("bootstrap_servers", "replication_factor", "min_insync_replicas", *SECURITY_KEYS)
_SERVERS_RULE = "write host:port[,host:port...] with ports 1 to 65535"
_SERVER = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>[0-9]+)", re.ASCII)


def _kafka(raw: object, where: _Where, environ: Mapping[str, str]) -> _Kafka:
    """The ``kafka`` section, each key overridden by its ``KAFKA_*`` variable when that is set."""
    section = _mapping(raw, where, "kafka")
    _reject_unknown_keys(section, _KAFKA_KEYS, where, "kafka", owner="kafka")
    replication = _env_count(environ, _REPLICATION_ENV, where, "kafka.replication_factor")
    if replication is None:
        replication = _count(
            section.get("replication_factor", 1), where, "kafka.replication_factor"
        )
    min_insync = _env_count(environ, _MIN_INSYNC_ENV, where, "kafka.min_insync_replicas")
    if min_insync is None and section.get("min_insync_replicas") is not None:
        min_insync = _count(section["min_insync_replicas"], where, "kafka.min_insync_replicas")
    if min_insync is None:
        min_insync = default_min_insync_replicas(replication)
    if min_insync > replication:
        raise where.error(
            "kafka.min_insync_replicas",
            f"{min_insync} is above replication_factor {replication}; no write could ever be"
            " acknowledged by all of them",
        )
    return _Kafka(
        _bootstrap_servers(section, where, environ),
        replication,
        min_insync,
        _security(section, where, environ),
    )


def _security(
    section: Mapping[object, object], where: _Where, environ: Mapping[str, str]
) -> dict[str, str]:
    """The TLS and SASL keys of ``kafka``, ``${VAR}`` expanded, under their ``KAFKA_*``."""
    given: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for key in SECURITY_KEYS:
        if key not in section:
            continue
        field = f"kafka.{key}"
        if key in _KAFKA_SECRET_KEYS:
            _require_references(section[key], where, field)
        value = section[key]
        if not isinstance(value, str):
            raise where.error(field, f"expected a string, got {_kind(value)}")
        given[key] = str(_expand(value, field, where, environ, secrets))
    try:
        return security_settings(given, environ)
    except SecurityError as exc:
        raise replace(where, secrets=secrets).error(f"kafka.{exc.key}", exc.problem) from None


def _bootstrap_servers(
    section: Mapping[object, object], where: _Where, environ: Mapping[str, str]
) -> str:
    field = "kafka.bootstrap_servers"
    value = section.get("bootstrap_servers", "localhost:9092")
    if not isinstance(value, str):
        raise where.error(field, f"expected host:port, got {_kind(value)}")
    if override := environ.get(_BOOTSTRAP_ENV, "").strip():
        _check_servers(override, where, f"{field} (from {_BOOTSTRAP_ENV})")
        return override
    secrets: dict[str, str] = {}
    servers = str(_expand(value, field, where, environ, secrets)).strip()
    if not servers:
        raise where.error(field, f"empty; {_SERVERS_RULE}")
    _check_servers(servers, replace(where, secrets=secrets), field)
    return servers


def _check_servers(servers: str, where: _Where, field: str) -> None:
    """Every comma-separated entry is ``host:port`` (``[v6]:port`` too), port 1 to 65535."""
    for number, written in enumerate(servers.split(","), start=1):
        entry = written.strip()
        if not entry:
            raise where.error(field, f"entry #{number} is empty; {_SERVERS_RULE}")
        server = _SERVER.fullmatch(entry)
        if server is None:
            raise where.error(field, f"{entry!r} is not host:port; {_SERVERS_RULE}")
        if not 1 <= int(server["port"]) <= 65535:
            raise where.error(field, f"{entry!r} has port {server['port']}; {_SERVERS_RULE}")


def _env_count(environ: Mapping[str, str], variable: str, where: _Where, field: str) -> int | None:
    """The whole number in ``environ[variable]``, or ``None`` when it is unset or empty."""
    text = environ.get(variable, "").strip()
    if not text:
        return None
    if not re.fullmatch(r"[0-9]{1,5}", text, re.ASCII) or int(text) < 1:
        raise where.error(
            f"{field} (from {variable})", f"{text!r} is not a whole number of at least 1"
        )
    return int(text)


def _convert(
    raw: Mapping[object, object],
    struct: type[_Struct],
    where: _Where,
    prefix: str | None,
    *,
    owner: str,
    note: str = "",
) -> _Struct:
    """``raw`` as ``struct``; msgspec's complaint becomes a ``ManifestError`` (plus ``note``)."""
    try:
        return msgspec.convert(raw, struct, dec_hook=decode_hook)
    except msgspec.ValidationError as exc:
        field, problem = _explain(str(exc), struct, owner)
        path = ".".join(filter(None, [prefix, field])) or None
        raise where.error(path, problem + note) from where.cause(exc)


def _explain(message: str, struct: type[msgspec.Struct], owner: str) -> tuple[str | None, str]:
    """The field and the problem in a msgspec validation message about ``struct``."""
    fields = {f.encode_name: f.type for f in msgspec.structs.fields(struct)}
    at = _MSGSPEC_AT.fullmatch(message)
    problem = at["problem"] if at else message
    field = re.sub(r"\[[^\]]*\]", "", at["path"]).lstrip(".") if at else ""
    if at and at["key"]:
        problem += " (in a key)"
    if unknown := re.fullmatch(r"Object contains unknown field `(.*)`", problem):
        return unknown[1], f"unknown key; {owner} accepts: {', '.join(fields)}"
    if missing := re.fullmatch(r"Object missing required field `(.*)`", problem):
        return missing[1], f"missing; {owner} requires it"
    first_word = problem.split(" ", 1)[0]
    if not field and first_word.split(".", 1)[0] in fields:
        # our __post_init__ messages start with the field (``headers.Authorization ...``)
        field, problem = first_word, problem if "." not in first_word else problem.split(" ", 1)[1]
    choices = get_args(fields[field]) if get_origin(fields.get(field)) is Literal else ()
    if choices and problem.startswith("Invalid enum value"):
        problem = f"{problem[len('Invalid enum value ') :]} is not one of: {', '.join(choices)}"
    return field or None, problem.replace("`", "").replace("Expected", "expected", 1)


def _reject_unknown_keys(
    section: Mapping[object, object],
    accepted: Sequence[str],
    where: _Where,
    prefix: str | None,
    *,
    owner: str,
) -> None:
    for key in section:
        if key not in accepted:
            close = difflib.get_close_matches(str(key), accepted, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise where.error(
                ".".join(filter(None, [prefix, str(key)])),
                f"unknown key{hint}; {owner} accepts: {', '.join(accepted)}",
            )


def _mapping(value: object, where: _Where, field: str | None) -> dict[object, object]:
    if not isinstance(value, dict):
        raise where.error(field, f"expected a mapping of keys to values, got {_kind(value)}")
    return value


def _kafka_name(value: object, where: _Where, field: str) -> str:
    if value is None:
        raise where.error(field, f"missing; {_KAFKA_NAME_RULE}")
    if not isinstance(value, str):
        raise where.error(field, f"expected a string, got {_kind(value)}; {_KAFKA_NAME_RULE}")
    if not _KAFKA_NAME.fullmatch(value) or value in {".", ".."}:
        raise where.error(field, f"{value!r} is not usable in Kafka names; {_KAFKA_NAME_RULE}")
    return value


def _start_from(value: object, where: _Where) -> StartFrom:
    accepted = get_args(StartFrom)
    if value not in accepted:
        raise where.error("start_from", f"{value!r} is not one of: {', '.join(accepted)}")
    return cast(StartFrom, value)


def _timeout(value: object, where: _Where, field: str) -> Duration:
    try:
        timeout = parse_duration(value)
    except ValueError as exc:
        raise where.error(field, str(exc)) from where.cause(exc)
    if not timeout > 0:
        raise where.error(field, "must be more than 0; write e.g. 500ms, 2s or 1m")
    return timeout


def _count(value: object, where: _Where, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(field, f"expected a whole number of at least 1, got {_kind(value)}")
    if value < 1:
        raise where.error(field, f"must be at least 1, got {value}")
    return value


def retention_warnings(
    manifest: Manifest, *, retention_seconds: float = EVENTS_RETENTION
) -> tuple[str, ...]:
    """What in ``manifest`` is valid but could lose events to retention, one line per finding.

    The events topic keeps events for ``retention_seconds``: what ingest creates it with
    (``EVENTS_RETENTION``) for ``--check``, which asks no broker; the topic's own
    ``retention.ms`` once the dispatcher runs. A parked user waits out
    ``parking.retry_schedule`` and an open breaker up to ``breaker.max_cooldown`` while its
    events stay in that topic; the park topic must keep parked events at least as long as the
    schedule takes.
    """
    warnings: list[str] = []
    retention = format_duration(retention_seconds)
    for spec in manifest.destinations:
        where = _Where(manifest.path, destination=f"destination {spec.name!r}")
        schedule = sum(spec.parking.retry_schedule)
        if schedule > retention_seconds:
            warnings.append(
                where.describe(
                    "parking.retry_schedule",
                    f"its waits add up to {format_duration(schedule)}, longer than the events"
                    f" topic keeps events ({retention}); events may be deleted by retention"
                    " before the schedule runs out",
                )
            )
        if spec.breaker.max_cooldown > retention_seconds:
            warnings.append(
                where.describe(
                    "breaker.max_cooldown",
                    f"{format_duration(spec.breaker.max_cooldown)} is longer than the events"
                    f" topic keeps events ({retention}); events may be deleted while the"
                    " breaker is open",
                )
            )
        if spec.parking.retention < schedule:
            warnings.append(
                where.describe(
                    "parking.retention",
                    f"{format_duration(spec.parking.retention)} is shorter than"
                    f" parking.retry_schedule takes ({format_duration(schedule)}); parked"
                    " events may be deleted before their last retry",
                )
            )
    return tuple(warnings)


def _check_names_across(manifests: Sequence[Manifest]) -> None:
    """No file given twice, no destination name in two of them: names make consumer groups."""
    files: dict[Path, int] = {}
    owners: dict[str, int] = {}
    for index, manifest in enumerate(manifests):
        if (earlier := files.setdefault(manifest.path.resolve(), index)) != index:
            alias = manifests[earlier].path
            also = f" (also as {alias})" if alias != manifest.path else ""
            raise ManifestError(f"{manifest.path}: given twice{also}; give each manifest once")
        for spec in manifest.destinations:
            if (owner := owners.setdefault(spec.name, index)) != index:
                raise _Where(manifest.path, f"destination {spec.name!r}").error(
                    "name",
                    f"{manifests[owner].path} has a destination {spec.name!r} too; names must"
                    " be unique across all manifests of one process (each names a consumer group)",
                )


MAX_DESTINATIONS = 950
"""Destinations one process runs at most: each has a Kafka consumer of its own, and a process
holds only about 1,000 Kafka clients (see ``dispatcher.park_reader``), a few of which it needs
for other things."""


def _check_process_size(manifests: Sequence[Manifest]) -> None:
    total = sum(len(manifest.destinations) for manifest in manifests)
    if total <= MAX_DESTINATIONS:
        return
    problem = (
        f"{total} destinations for one process, which runs at most {MAX_DESTINATIONS} (each has"
        " a Kafka consumer of its own, and a process holds about 1,000 Kafka clients); split"
        " them into shards, each run by dispatchers of its own"
    )
    if len(manifests) == 1:
        raise _Where(manifests[0].path).error("destinations", problem)
    raise ManifestError(f"{', '.join(str(m.path) for m in manifests)}: {problem}")


def _kind(value: object) -> str:
    """What a YAML value is, in words (never the value: it may be a secret)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true/false"
    kinds = {int: "a number", float: "a number", str: "a string", list: "a list", dict: "a mapping"}
    return kinds.get(type(value), type(value).__name__)
