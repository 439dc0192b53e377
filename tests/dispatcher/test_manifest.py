"""Manifest loading: the schema, defaults and ``${VAR}``, and one clear error per mistake."""

from __future__ import annotations

import dataclasses
import os
import textwrap
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.destinations import http, mock
from dispatcher.destinations.http import HttpOptions
from dispatcher.destinations.mock import MockOptions
from dispatcher.durations import Duration
from dispatcher.exceptions import ManifestError
from dispatcher.manifest import (
    MAX_DESTINATIONS,
    DestinationSpec,
    Manifest,
    load_manifest,
    load_manifests,
)
from dispatcher.retry import RetryPolicy

SHIPPED = Path(__file__).parents[2] / "manifests"
SECRET = "s3cr3t-t0ken-value"
KNOWN_TYPES = {"mock": mock.TYPE, "http": http.TYPE}  # fixed, so the messages below stay true

Write = Callable[..., Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Writes dedented YAML to a file in the test's directory and returns its path."""

    def write_file(text: str, name: str = "manifest.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write_file


def load(path: Path, environ: Mapping[str, str] | None = None) -> Manifest:
    return load_manifest(path, environ={} if environ is None else environ, types=KNOWN_TYPES)


def error_of(path: Path, environ: Mapping[str, str] | None = None) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        load(path, environ)
    return caught.value


MINIMAL = """
destinations:
  - {name: bigquery, type: mock, behavior: succeed}
"""


# --- what a valid manifest gives -------------------------------------------------------------


def test_a_minimal_manifest_gets_every_default(write: Write) -> None:
    manifest = load(write(MINIMAL))
    assert manifest.topic == "events"
    assert manifest.dead_letter_topic == "events.dead-letter"
    assert manifest.group_prefix == "event-delivery"
    assert manifest.start_from == "earliest"
    assert manifest.bootstrap_servers == "localhost:9092"
    (spec,) = manifest.destinations
    assert spec == DestinationSpec(
        name="bigquery",
        type="mock",
        options=MockOptions(behavior="succeed"),
        timeout=1.0,
        retry=RetryPolicy(),
        concurrency=64,
        max_buffered=5000,
    )
    assert manifest.group_id(spec) == "event-delivery.bigquery"


def test_the_dead_letter_topic_follows_the_topic(write: Write) -> None:
    manifest = load(write("topic: orders\n" + MINIMAL))
    assert manifest.dead_letter_topic == "orders.dead-letter"


def test_destinations_inherit_defaults_and_override_them_key_by_key(write: Write) -> None:
    path = write("""
        topic: clicks
        dead_letter_topic: clicks.dlq
        group_prefix: shard-a
        start_from: latest
        kafka: {bootstrap_servers: "k1:9092,k2:9092"}
        defaults:
          timeout: 500ms
          retry: {max_retries: 2, initial_backoff: 50ms, max_backoff: 1s, jitter: false}
          concurrency: 8
          max_buffered: 100
        destinations:
          - {name: inherits, type: mock, behavior: fail}
          - name: overrides
            type: mock
            behavior: fail
            timeout: 2s
            retry: {max_retries: 5}
            concurrency: 16
            max_buffered: 16
    """)
    manifest = load(path)
    inherits, overrides = manifest.destinations
    assert (manifest.topic, manifest.dead_letter_topic) == ("clicks", "clicks.dlq")
    assert manifest.start_from == "latest"
    assert manifest.bootstrap_servers == "k1:9092,k2:9092"
    assert manifest.group_id(overrides) == "shard-a.overrides"
    assert (inherits.timeout, inherits.concurrency, inherits.max_buffered) == (0.5, 8, 100)
    assert inherits.retry == RetryPolicy(
        max_retries=2, initial_backoff=Duration(0.05), max_backoff=Duration(1.0), jitter=False
    )
    assert (overrides.timeout, overrides.concurrency, overrides.max_buffered) == (2.0, 16, 16)
    # Only max_retries is its own; the other retry keys still come from defaults.retry.
    assert overrides.retry == RetryPolicy(
        max_retries=5, initial_backoff=Duration(0.05), max_backoff=Duration(1.0), jitter=False
    )


def test_http_options_are_the_type_struct(write: Write) -> None:
    path = write("""
        destinations:
          - name: webhook
            type: http
            url: http://127.0.0.1:9000/hook
            max_connections: 4
    """)
    (spec,) = load(path).destinations
    assert spec.options == HttpOptions(url="http://127.0.0.1:9000/hook", max_connections=4)


def test_a_yaml_merge_key_is_not_mistaken_for_a_duplicate(write: Write) -> None:
    path = write("""
        destinations:
          - &base {name: one, type: mock, behavior: fail}
          - {<<: *base, name: two}
    """)
    assert [d.name for d in load(path).destinations] == ["one", "two"]


# --- ${VAR} -------------------------------------------------------------------------------------

WEBHOOK = """
destinations:
  - name: webhook
    type: http
    url: ${HOOK_URL}
    headers: {Authorization: "Bearer ${HOOK_TOKEN}", X-Template: "$${not_expanded}"}
"""


def test_variables_are_expanded_in_every_string_and_double_dollar_escapes(write: Write) -> None:
    environ = {"HOOK_URL": "https://hooks.example/in", "HOOK_TOKEN": SECRET}
    (spec,) = load(write(WEBHOOK), environ).destinations
    assert isinstance(spec.options, HttpOptions)
    assert spec.options.url == "https://hooks.example/in"
    assert spec.options.headers == {
        "Authorization": f"Bearer {SECRET}",
        "X-Template": "${not_expanded}",
    }


def test_a_variable_may_hold_a_duration(write: Write) -> None:
    path = write("""
        destinations:
          - {name: slow, type: mock, behavior: succeed, timeout: "${SLOW_TIMEOUT}"}
    """)
    (spec,) = load(path, {"SLOW_TIMEOUT": "3s"}).destinations
    assert spec.timeout == 3.0


def test_kafka_servers_expand_and_the_environment_overrides_them(write: Write) -> None:
    path = write("kafka: {bootstrap_servers: '${BROKER}:9092'}\n" + MINIMAL)
    assert load(path, {"BROKER": "kafka-1"}).bootstrap_servers == "kafka-1:9092"
    overridden = load(path, {"KAFKA_BOOTSTRAP_SERVERS": "elsewhere:9093"})
    assert overridden.bootstrap_servers == "elsewhere:9093"


def test_an_unset_variable_is_named(write: Write) -> None:
    message = str(error_of(write(WEBHOOK), {"HOOK_URL": "https://hooks.example/in"}))
    assert "destination 'webhook'" in message
    assert "field 'headers.Authorization'" in message
    assert "HOOK_TOKEN is not set" in message


def test_a_malformed_reference_is_refused(write: Write) -> None:
    path = write("""
        destinations:
          - {name: webhook, type: http, url: "http://x/${not closed"}
    """)
    message = str(error_of(path))
    assert "destination 'webhook': field 'url': malformed" in message
    assert "$${" in message


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        pytest.param(
            "url: 'ftp://${HOOK_TOKEN}@example'",
            "field 'url': url must start with http:// or https://, got 'ftp://${HOOK_TOKEN}@",
            id="bad-url",
        ),
        pytest.param(
            "url: http://x\n    timeout: '${HOOK_TOKEN}'",
            "field 'timeout': not a duration: '${HOOK_TOKEN}'",
            id="bad-duration",
        ),
        pytest.param(
            "url: http://x\n    max_connections: '${HOOK_TOKEN}'",
            "field 'max_connections': expected int | null, got str",
            id="wrong-type",
        ),
    ],
)
def test_an_expanded_secret_never_appears_in_an_error(write: Write, keys: str, says: str) -> None:
    path = write(f"destinations:\n  - name: webhook\n    type: http\n    {keys}\n")
    error = error_of(path, {"HOOK_TOKEN": SECRET})
    assert says in str(error)
    assert SECRET not in "".join(traceback.format_exception(error))


def test_an_enum_error_does_not_show_a_secret_either(write: Write) -> None:
    path = write("destinations:\n  - {name: m, type: mock, behavior: '${HOOK_TOKEN}'}\n")
    error = error_of(path, {"HOOK_TOKEN": SECRET})
    assert SECRET not in "".join(traceback.format_exception(error))
    assert "'${HOOK_TOKEN}' is not one of: succeed, fail, timeout, fail_first, random" in str(error)


# --- one clear error per mistake ------------------------------------------------------------

ONE = "destinations:\n  - {name: bq, type: mock, behavior: succeed"

ERRORS = [
    # (id, manifest, where the message points, what it must say)
    ("top-level-list", "- a\n- b\n", "", ["top level must be a mapping", "got a list"]),
    ("empty-file", "", "", ["empty", "destinations"]),
    (
        "unknown-top-key",
        "destination: []\n",
        "field 'destination'",
        ["unknown key", "did you mean 'destinations'", "accepts: topic, dead_letter_topic"],
    ),
    ("no-destinations", "topic: events\n", "field 'destinations'", ["missing"]),
    ("empty-destinations", "destinations: []\n", "field 'destinations'", ["empty"]),
    ("destinations-not-list", "destinations: {a: 1}\n", "field 'destinations'", ["got a mapping"]),
    ("bad-topic", "topic: 'my topic'\n" + ONE + "}", "field 'topic'", ["'my topic'", "letters"]),
    (
        "dlq-is-topic",
        "topic: a\ndead_letter_topic: a\n" + ONE + "}",
        "field 'dead_letter_topic'",
        ["must differ from topic 'a'"],
    ),
    (
        "bad-start-from",
        "start_from: beginning\n" + ONE + "}",
        "field 'start_from'",
        ["'beginning' is not one of: earliest, latest"],
    ),
    (
        "unknown-kafka-key",
        "kafka: {servers: x}\n" + ONE + "}",
        "field 'kafka.servers'",
        ["unknown key", "bootstrap_servers"],
    ),
    (
        "unknown-defaults-key",
        "defaults: {timeout: 1s, retries: 3}\n" + ONE + "}",
        "field 'defaults.retries'",
        ["did you mean 'retry'"],
    ),
    (
        "bad-default-duration",
        "defaults: {retry: {initial_backoff: soon}}\n" + ONE + "}",
        "field 'defaults.retry.initial_backoff'",
        ["not a duration: 'soon'; write e.g. 500ms, 2s, 1m, 2h or 7d"],
    ),
    (
        "default-buffer-below-concurrency",
        "defaults: {concurrency: 6000}\n" + ONE + "}",
        "field 'defaults.max_buffered'",
        ["5000 is below concurrency 6000"],
    ),
    ("entry-not-mapping", "destinations: [bigquery]\n", "destination #1", ["expected a mapping"]),
    (
        "missing-name",
        "destinations:\n  - {type: mock, behavior: fail}\n",
        "destination #1: field 'name'",
        ["missing", "letters, digits"],
    ),
    (
        "bad-name",
        "destinations:\n  - {name: 'big query', type: mock, behavior: fail}\n",
        "destination 'big query': field 'name'",
        ["'big query' is not usable", "letters, digits, '.', '_' or '-'"],
    ),
    (
        "empty-name",
        "destinations:\n  - {name: '', type: mock, behavior: fail}\n",
        "destination #1: field 'name'",
        ["'' is not usable"],
    ),
    (
        "missing-type",
        "destinations:\n  - {name: bq, behavior: fail}\n",
        "destination 'bq': field 'type'",
        ["missing; known types: http, mock"],
    ),
    (
        "unknown-type",
        "destinations:\n  - {name: bq, type: bigquery}\n",
        "destination 'bq': field 'type'",
        ["unknown type 'bigquery'; known types: http, mock"],
    ),
    (
        "unknown-destination-key",
        ONE + ", behaviour: fail}",
        "destination 'bq': field 'behaviour'",
        ["unknown key", "did you mean 'behavior'", "type 'mock' accepts: name, type, timeout"],
    ),
    (
        "missing-url",
        "destinations:\n  - {name: hook, type: http}\n",
        "destination 'hook': field 'url'",
        ["missing; type 'http' requires it"],
    ),
    (
        "bad-url",
        "destinations:\n  - {name: hook, type: http, url: 'ftp://x'}\n",
        "destination 'hook': field 'url'",
        ["http:// or https://"],
    ),
    (
        "bad-behavior",
        "destinations:\n  - {name: bq, type: mock, behavior: sometimes}\n",
        "destination 'bq': field 'behavior'",
        ["'sometimes' is not one of: succeed, fail, timeout, fail_first, random"],
    ),
    (
        "bad-failure-rate",
        ONE + ", failure_rate: 2}",
        "destination 'bq': field 'failure_rate'",
        ["between 0 and 1"],
    ),
    (
        "no-connections",
        "destinations:\n  - {name: hook, type: http, url: 'http://x', max_connections: 0}\n",
        "destination 'hook': field 'max_connections'",
        ["at least 1"],
    ),
    (
        "header-not-string",
        "destinations:\n  - {name: hook, type: http, url: 'http://x', headers: {X-N: 5}}\n",
        "destination 'hook': field 'headers'",
        ["expected str, got int"],
    ),
    (
        "bad-timeout",
        ONE + ", timeout: soon}",
        "destination 'bq': field 'timeout'",
        ["not a duration: 'soon'; write e.g. 500ms, 2s, 1m, 2h or 7d"],
    ),
    (
        "zero-timeout",
        ONE + ", timeout: 0s}",
        "destination 'bq': field 'timeout'",
        ["more than 0"],
    ),
    (
        "bad-retry-duration",
        ONE + ", retry: {max_backoff: soon}}",
        "destination 'bq': field 'retry.max_backoff'",
        ["not a duration: 'soon'; write e.g. 500ms, 2s, 1m, 2h or 7d"],
    ),
    (
        "unknown-retry-key",
        ONE + ", retry: {max_retry: 1}}",
        "destination 'bq': field 'retry.max_retry'",
        ["unknown key", "accepts: max_retries, initial_backoff"],
    ),
    (
        "retry-not-int",
        ONE + ", retry: {max_retries: yes}}",
        "destination 'bq': field 'retry.max_retries'",
        ["expected int, got bool"],
    ),
    (
        "negative-retries",
        ONE + ", retry: {max_retries: -1}}",
        "destination 'bq': field 'retry.max_retries'",
        ["0 or more"],
    ),
    (
        "merged-retry-contradicts",
        "defaults: {retry: {initial_backoff: 1s}}\n" + ONE + ", retry: {max_backoff: 500ms}}",
        "destination 'bq': field 'retry.max_backoff'",
        ["must not be below initial_backoff", "laid key by key over defaults.retry"],
    ),
    (
        "retry-not-mapping",
        ONE + ", retry: 3}",
        "destination 'bq': field 'retry'",
        ["expected a mapping", "got a number"],
    ),
    (
        "zero-concurrency",
        ONE + ", concurrency: 0}",
        "destination 'bq': field 'concurrency'",
        ["at least 1, got 0"],
    ),
    (
        "concurrency-not-int",
        ONE + ", concurrency: '8'}",
        "destination 'bq': field 'concurrency'",
        ["whole number", "got a string"],
    ),
    (
        "buffer-below-concurrency",
        ONE + ", concurrency: 10, max_buffered: 5}",
        "destination 'bq': field 'max_buffered'",
        ["5 is below concurrency 10", "at least 10"],
    ),
    (
        "duplicate-name",
        ONE + "}\n  - {name: other, type: mock, behavior: fail}\n"
        "  - {name: bq, type: mock, behavior: fail}\n",
        "destination 'bq': field 'name'",
        ["destinations #1 and #3 are both named 'bq'", "unique"],
    ),
]


@pytest.mark.parametrize(
    ("text", "where", "says"), [pytest.param(*case[1:], id=case[0]) for case in ERRORS]
)
def test_each_mistake_is_one_error_naming_file_destination_and_field(
    write: Write, text: str, where: str, says: list[str]
) -> None:
    path = write(text)
    message = str(error_of(path))
    assert message.startswith(f"{path}: {where}")
    for fragment in says:
        assert fragment in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert str(error_of(path)) == f"{path}: file not found; give the path of a manifest YAML file"


def test_a_directory_is_not_a_manifest(tmp_path: Path) -> None:
    assert str(error_of(tmp_path)) == (
        f"{tmp_path}: is a directory; give the path of a manifest YAML file"
    )


def test_an_unreadable_file_is_named(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(MINIMAL)

    def refuse(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)  # root reads any file, so chmod cannot say no
    assert str(error_of(path)) == f"{path}: cannot be read: Permission denied"


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("topic: caf\xe9\n".encode("latin-1"))
    assert str(error_of(path)).startswith(f"{path}: not UTF-8 text")


def test_a_yaml_syntax_error_gives_the_line(write: Write) -> None:
    path = write("""
        topic: events
        destinations:
          - name: bq
            type: mock
           behavior: succeed
    """)
    message = str(error_of(path))
    assert message.startswith(f"{path}: not valid YAML at line 6, column 4:")


def test_a_key_written_twice_is_refused_with_both_lines(write: Write) -> None:
    path = write("""
        destinations:
          - name: bq
            type: mock
            behavior: succeed
            behavior: fail
    """)
    message = str(error_of(path))
    assert message.startswith(f"{path}: not valid YAML at line 6")
    assert "key 'behavior' appears twice in one mapping (first on line 5)" in message


def test_the_known_types_come_from_the_registry_given(write: Write) -> None:
    path = write("destinations:\n  - {name: hook, type: http, url: 'http://x'}\n")
    with pytest.raises(ManifestError, match=r"unknown type 'http'; known types: mock$"):
        load_manifest(path, environ={}, types={"mock": mock.TYPE})


# --- several manifests in one process ---------------------------------------------------------


def test_names_must_be_unique_across_manifests_and_both_files_are_named(write: Write) -> None:
    first = write(MINIMAL, "a.yaml")
    second = write("destinations:\n  - {name: bigquery, type: mock, behavior: fail}\n", "b.yaml")
    with pytest.raises(ManifestError) as caught:
        load_manifests([first, second], environ={})
    message = str(caught.value)
    assert message.startswith(f"{second}: destination 'bigquery': field 'name': {first} has")
    assert "unique across all manifests" in message


def test_the_same_manifest_twice_is_refused(write: Write) -> None:
    path = write(MINIMAL)
    with pytest.raises(ManifestError, match="given twice"):
        load_manifests([path, path.parent / "." / path.name], environ={})


def destination_lines(first: int, count: int) -> str:
    return "".join(
        f"  - {{name: d{n}, type: mock, behavior: succeed}}\n" for n in range(first, first + count)
    )


def test_one_process_runs_at_most_950_destinations(write: Write) -> None:
    full = write("destinations:\n" + destination_lines(0, MAX_DESTINATIONS), "full.yaml")
    assert len(load_manifests([full], environ={})[0].destinations) == MAX_DESTINATIONS
    over = write("destinations:\n" + destination_lines(0, MAX_DESTINATIONS + 1), "over.yaml")
    with pytest.raises(ManifestError) as caught:
        load_manifests([over], environ={})
    assert str(caught.value).startswith(
        f"{over}: field 'destinations': {MAX_DESTINATIONS + 1} destinations for one process,"
        f" which runs at most {MAX_DESTINATIONS}"
    )


def test_the_limit_counts_the_destinations_of_every_manifest_of_a_process(
    write: Write,
) -> None:
    first = write("destinations:\n" + destination_lines(0, 600), "a.yaml")
    second = write("destinations:\n" + destination_lines(600, MAX_DESTINATIONS - 599), "b.yaml")
    over = MAX_DESTINATIONS + 1
    with pytest.raises(ManifestError, match=rf"^{first}, {second}: {over} destinations for one"):
        load_manifests([first, second], environ={})


def test_no_manifest_at_all_is_refused() -> None:
    with pytest.raises(ManifestError, match="no manifest given"):
        load_manifests([], environ={})


# --- the shipped demonstration manifests ----------------------------------------------------


def test_the_shipped_manifests_hold_the_five_demo_destinations() -> None:
    manifests = load_manifests([SHIPPED / "shard-a.yaml", SHIPPED / "shard-b.yaml"], environ={})
    behaviors = {
        spec.name: spec.options.behavior
        for manifest in manifests
        for spec in manifest.destinations
        if isinstance(spec.options, MockOptions)
    }
    assert behaviors == {
        "bigquery": "succeed",
        "redshift": "fail_first",
        "postgres": "fail",
        "snowflake": "fail",
        "azure-data-lake": "timeout",
    }
    for manifest in manifests:
        assert manifest.topic == "events"
        assert manifest.dead_letter_topic == "events.dead-letter"
        for spec in manifest.destinations:
            # Short enough that someone watching the logs sees retries and dead letters.
            assert spec.timeout <= 1.0
            assert spec.retry.max_retries <= 3
            assert spec.retry.max_backoff <= 2.0


# --- durations and robustness -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("250ms", 0.25),
        ("2s", 2.0),
        ("1.5m", 90.0),
        ("3", 3.0),
        ("0.5", 0.5),
        ("2h", 7200.0),
        ("1d", 86400.0),
    ],
)
def test_durations_in_a_manifest(write: Write, written: str, seconds: float) -> None:
    (spec,) = load(write(ONE + f", timeout: '{written}'}}")).destinations
    assert spec.timeout == pytest.approx(seconds)


@pytest.mark.parametrize("written", ["2 s", "-1s", "soon", "'1,5s'", ".inf", ".nan", "true", "[]"])
def test_what_is_not_a_duration(write: Write, written: str) -> None:
    message = str(error_of(write(ONE + f", retry: {{initial_backoff: {written}}}}}")))
    assert "field 'retry.initial_backoff'" in message


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amount=st.integers(min_value=1, max_value=100_000),
    unit=st.sampled_from([("ms", 0.001), ("s", 1.0), ("m", 60.0), ("", 1.0)]),
)
def test_any_written_duration_is_read_as_seconds(
    write: Write, amount: int, unit: tuple[str, float]
) -> None:
    suffix, scale = unit
    (spec,) = load(write(ONE + f", timeout: '{amount}{suffix}'}}")).destinations
    assert spec.timeout == pytest.approx(amount * scale)


_KEYS = st.sampled_from(
    [
        "topic",
        "start_from",
        "kafka",
        "defaults",
        "destinations",
        "name",
        "type",
        "behavior",
        "url",
        "headers",
        "retry",
        "timeout",
        "concurrency",
        "max_buffered",
        "max_retries",
        "x",
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5000),
    st.floats(allow_nan=True),
    st.sampled_from(["", "mock", "http", "fail", "2s", "soon", "http://x", "${X}", "a b"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


_DURATIONS = st.sampled_from(["2s", "100ms", 1, 0, "soon", None, True])
_COUNTS = st.sampled_from([1, 8, 64, 2000, 0, "8", None])
_COMMON = {
    "retry": st.dictionaries(
        st.sampled_from(["max_retries", "initial_backoff", "max_backoff", "jitter", "y"]),
        st.sampled_from([0, 3, -1, "200ms", "2s", True, "soon"]),
        max_size=3,
    ),
    "timeout": _DURATIONS,
    "concurrency": _COUNTS,
    "max_buffered": _COUNTS,
}
_DESTINATION = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b", "c", "a b"]), "type": st.sampled_from(["mock", "http"])},
    optional={
        "behavior": st.sampled_from(["succeed", "fail", "timeout", "maybe"]),
        "url": st.sampled_from(["http://x", "ftp://x", "${X}", "${Y}"]),
        "headers": st.dictionaries(st.sampled_from(["A", "B"]), _SCALARS, max_size=2),
        **_COMMON,
    },
)
_DOCUMENTS = st.dictionaries(_KEYS, _VALUES, max_size=5) | st.fixed_dictionaries(
    {"destinations": st.lists(_DESTINATION, min_size=1, max_size=3)},
    optional={
        "defaults": st.fixed_dictionaries({}, optional=_COMMON),
        "topic": st.sampled_from(["events", "a b", 5]),
        "start_from": st.sampled_from(["earliest", "latest", "now"]),
    },
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=_DOCUMENTS)
def test_any_document_loads_or_fails_with_a_manifest_error(
    write: Write, document: dict[str, object]
) -> None:
    path = write(yaml.safe_dump(document))
    outcome: Manifest | ManifestError
    try:
        outcome = load(path)
    except ManifestError as error:
        outcome = error
    if isinstance(outcome, ManifestError):
        assert str(outcome).startswith(f"{path}: ")
        return
    assert outcome.destinations
    for spec in outcome.destinations:
        assert isinstance(spec.options, msgspec.Struct)
        assert 1 <= spec.concurrency <= spec.max_buffered


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"timeout": 0.0}, "timeout must be more than 0"),
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"concurrency": 8, "max_buffered": 4}, "max_buffered must be at least concurrency"),
    ],
)
def test_a_destination_spec_made_in_code_keeps_the_same_rules(
    changes: dict[str, Any], says: str
) -> None:
    valid = DestinationSpec("n", "mock", MockOptions(behavior="succeed"), 1.0, RetryPolicy())
    with pytest.raises(ValueError, match=says):
        dataclasses.replace(valid, **changes)
