"""Manifest keys beyond the basics: breaker, parking, byte bounds, the kafka section, checks of
what every delivery would otherwise fail on, and the warnings of ``--check``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from dispatcher.breaker import BreakerPolicy
from dispatcher.durations import Duration
from dispatcher.exceptions import ManifestError
from dispatcher.manifest import Manifest, load_manifest, retention_warnings
from dispatcher.parking import ParkingPolicy
from ingest.settings import IngestSettings

SECRET = "s3cr3t-t0ken-value"

Write = Callable[[str], Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    def write_file(text: str) -> Path:
        path = tmp_path / "manifest.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write_file


def load(path: Path, environ: Mapping[str, str] | None = None) -> Manifest:
    return load_manifest(path, environ=environ or {})


def error_of(path: Path, environ: Mapping[str, str] | None = None) -> str:
    with pytest.raises(ManifestError) as caught:
        load(path, environ)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert SECRET not in "".join(traceback.format_exception(caught.value))
    return message


MOCK = "destinations:\n  - {name: bq, type: mock, behavior: succeed"


# --- breaker, parking, max_buffered_bytes: inherited key by key like retry ------------------


def test_breaker_parking_and_byte_bound_default_to_the_policies(write: Write) -> None:
    (spec,) = load(write(MOCK + "}\n")).destinations
    assert spec.breaker == BreakerPolicy()
    assert spec.parking == ParkingPolicy()
    assert spec.max_buffered_bytes == 67_108_864


def test_breaker_and_parking_are_laid_key_by_key_over_defaults(write: Write) -> None:
    path = write("""
        defaults:
          breaker: {consecutive_failures: 3, cooldown: 10s}
          parking: {retry_schedule: [1m, 1h], max_parked_events: 50}
          max_buffered_bytes: 1048576
        destinations:
          - {name: inherits, type: mock, behavior: fail}
          - name: overrides
            type: mock
            behavior: fail
            breaker: {cooldown: 20s}
            parking: {max_parked_events: 10}
            max_buffered_bytes: 2048
    """)
    inherits, overrides = load(path).destinations
    assert inherits.breaker == BreakerPolicy(consecutive_failures=3, cooldown=Duration(10))
    assert overrides.breaker == BreakerPolicy(consecutive_failures=3, cooldown=Duration(20))
    assert inherits.parking.retry_schedule == (60.0, 3600.0)
    assert overrides.parking.retry_schedule == (60.0, 3600.0)
    assert (inherits.parking.max_parked_events, overrides.parking.max_parked_events) == (50, 10)
    assert (inherits.max_buffered_bytes, overrides.max_buffered_bytes) == (1_048_576, 2048)


@pytest.mark.parametrize(
    ("keys", "where", "says"),
    [
        ("breaker: {cooldown: soon}", "field 'breaker.cooldown'", "not a duration: 'soon'"),
        ("breaker: {consecutive: 1}", "field 'breaker.consecutive'", "unknown key"),
        (
            "breaker: {consecutive_failures: 0}",
            "field 'breaker.consecutive_failures'",
            "at least 1",
        ),
        ("breaker: 5", "field 'breaker'", "expected a mapping"),
        ("parking: {retry_schedule: []}", "field 'parking.retry_schedule'", "at least one wait"),
        ("parking: {retry_schedule: [1m, 0s]}", "field 'parking.retry_schedule'", "more than 0"),
        ("parking: {retention: 2 d}", "field 'parking.retention'", "not a duration"),
        ("max_buffered_bytes: 0", "field 'max_buffered_bytes'", "at least 1, got 0"),
        ("max_buffered_bytes: 1MB", "field 'max_buffered_bytes'", "whole number"),
    ],
)
def test_bad_breaker_parking_and_byte_bounds(
    write: Write, keys: str, where: str, says: str
) -> None:
    message = error_of(write(MOCK + f", {keys}}}\n"))
    assert message.startswith(f"{write('x').parent / 'manifest.yaml'}: destination 'bq': {where}")
    assert says in message


def test_a_merged_breaker_that_contradicts_itself_says_it_was_merged(write: Write) -> None:
    path = write(
        "defaults: {breaker: {max_cooldown: 10s}}\n" + MOCK + ", breaker: {cooldown: 1m}}\n"
    )
    message = error_of(path)
    assert "field 'breaker.max_cooldown'" in message
    assert "laid key by key over defaults.breaker" in message


# --- kafka: servers, replication -------------------------------------------------------------


def test_replication_defaults_to_one_copy(write: Write) -> None:
    manifest = load(write(MOCK + "}\n"))
    assert (manifest.replication_factor, manifest.min_insync_replicas) == (1, 1)


@pytest.mark.parametrize("copies", [1, 2, 3, 5])
def test_min_insync_defaults_as_ingest_s_does(write: Write, copies: int) -> None:
    # Whichever of the two creates the events topic first, it gets the same durability.
    manifest = load(write(f"kafka: {{replication_factor: {copies}}}\n" + MOCK + "}\n"))
    ingest = IngestSettings(replication_factor=copies)
    assert manifest.min_insync_replicas == ingest.effective_min_insync_replicas
    assert manifest.min_insync_replicas == max(1, min(2, copies - 1))


def test_replication_from_the_manifest_and_the_environment(write: Write) -> None:
    path = write("kafka: {replication_factor: 3, min_insync_replicas: 2}\n" + MOCK + "}\n")
    manifest = load(path)
    assert (manifest.replication_factor, manifest.min_insync_replicas) == (3, 2)
    overridden = load(path, {"KAFKA_REPLICATION_FACTOR": "5", "KAFKA_MIN_INSYNC_REPLICAS": "3"})
    assert (overridden.replication_factor, overridden.min_insync_replicas) == (5, 3)
    unset = load(path, {"KAFKA_REPLICATION_FACTOR": "", "KAFKA_MIN_INSYNC_REPLICAS": " "})
    assert (unset.replication_factor, unset.min_insync_replicas) == (3, 2)


@pytest.mark.parametrize(
    ("kafka", "environ", "where", "says"),
    [
        ("{replication_factor: 0}", {}, "field 'kafka.replication_factor'", "at least 1"),
        ("{replication_factor: '3'}", {}, "field 'kafka.replication_factor'", "whole number"),
        ("{min_insync_replicas: 2}", {}, "field 'kafka.min_insync_replicas'", "above"),
        (
            "{replication_factor: 3, min_insync_replicas: 4}",
            {},
            "field 'kafka.min_insync_replicas'",
            "4 is above replication_factor 3",
        ),
        (
            "{}",
            {"KAFKA_REPLICATION_FACTOR": "three"},
            "field 'kafka.replication_factor (from KAFKA_REPLICATION_FACTOR)'",
            "'three' is not a whole number",
        ),
        (
            "{}",
            {"KAFKA_MIN_INSYNC_REPLICAS": "\uff12"},
            "field 'kafka.min_insync_replicas (from KAFKA_MIN_INSYNC_REPLICAS)'",
            "not a whole number",
        ),
        ("{replicas: 3}", {}, "field 'kafka.replicas'", "unknown key"),
    ],
)
def test_bad_replication_settings(
    write: Write, kafka: str, environ: dict[str, str], where: str, says: str
) -> None:
    path = write(f"kafka: {kafka}\n" + MOCK + "}\n")
    message = error_of(path, environ)
    assert message.startswith(f"{path}: {where}: ")
    assert says in message


@pytest.mark.parametrize(
    "servers", ["k1:9092", "k1:9092,k2:9093", "k1:9092, k2:9093", "[::1]:9092", "10.0.0.1:1"]
)
def test_bootstrap_lists_that_work(write: Write, servers: str) -> None:
    assert load(write(f"kafka: {{bootstrap_servers: '{servers}'}}\n" + MOCK + "}\n"))


@pytest.mark.parametrize(
    ("servers", "says"),
    [
        ("localhost", "'localhost' is not host:port"),
        ("h:abc", "'h:abc' is not host:port"),
        ("h:99999", "'h:99999' has port 99999"),
        ("h:0", "has port 0"),
        (",,", "entry #1 is empty"),
        ("k1:9092,", "entry #2 is empty"),
        ("k 1:9092", "is not host:port"),
        ("h:\u0663", "is not host:port"),
        ("", "empty"),
    ],
)
def test_bootstrap_lists_that_cannot_work(write: Write, servers: str, says: str) -> None:
    path = write(f"kafka: {{bootstrap_servers: '{servers}'}}\n" + MOCK + "}\n")
    message = error_of(path)
    assert message.startswith(f"{path}: field 'kafka.bootstrap_servers': ")
    assert says in message


def test_the_bootstrap_override_is_checked_and_named(write: Write) -> None:
    path = write(MOCK + "}\n")
    message = error_of(path, {"KAFKA_BOOTSTRAP_SERVERS": "localhost"})
    assert "field 'kafka.bootstrap_servers (from KAFKA_BOOTSTRAP_SERVERS)'" in message


def test_an_expanded_bootstrap_secret_is_not_shown(write: Write) -> None:
    path = write("kafka: {bootstrap_servers: '${BROKER}'}\n" + MOCK + "}\n")
    assert "'${BROKER}' is not host:port" in error_of(path, {"BROKER": SECRET})


# --- http options that every delivery would fail on, refused at load ------------------------


@pytest.mark.parametrize(
    ("keys", "where", "says"),
    [
        ("url: 'http://x:99999/'", "field 'url'", "port must be 1 to 65535"),
        ("url: 'http://exa mple.com/'", "field 'url'", "contains a space"),
        ("url: 'http://'", "field 'url'", "no host"),
        ("url: 'http://x/', headers: {'': v}", "field 'headers'", "is not a header name"),
        ("url: 'http://x/', headers: {'A B': v}", "field 'headers'", "'A B' is not a header"),
        ("url: 'http://x/', headers: {'A:': v}", "field 'headers'", "is not a header name"),
        (
            'url: "http://x/", headers: {X-T: "a\\r\\nb"}',
            "field 'headers.X-T'",
            "value contains a carriage return (CR) at character 2",
        ),
        ('url: "http://x/", headers: {X-T: "a\\0b"}', "field 'headers.X-T'", "NUL"),
        (
            "url: 'http://x/', headers: {Authorization: 'Bearer ${TOKEN}'}",
            "field 'headers.Authorization'",
            "line feed (LF) at character 26",
        ),
        ("url: 'http://x/', retryable_status: [200]", "field 'retryable_status'", "2xx"),
        ("url: 'http://x/', permanent_status: ['4xx']", "field 'permanent_status'", "'4xx'"),
        ("url: 'http://x/', destination_status: 401", "field 'destination_status'", "array"),
    ],
)
def test_http_options_every_delivery_would_fail_on(
    write: Write, keys: str, where: str, says: str
) -> None:
    path = write(f"destinations:\n  - {{name: hook, type: http, {keys}}}\n")
    message = error_of(path, {"TOKEN": SECRET + "\n"})
    assert message.startswith(f"{path}: destination 'hook': {where}: ")
    assert says in message


def test_status_lists_in_a_manifest(write: Write) -> None:
    path = write("""
        destinations:
          - name: hook
            type: http
            url: http://127.0.0.1:9/
            retryable_status: [409, "500-599"]
            permanent_status: ["400-499"]
            destination_status: [401, 403]
    """)
    (spec,) = load(path).destinations
    rules = spec.options.status_rules()  # type: ignore[attr-defined]
    assert 409 in rules.retryable and 599 in rules.retryable
    assert rules.destination == {401, 403}


# --- warnings of --check -------------------------------------------------------------------


def test_the_defaults_warn_about_nothing(write: Write) -> None:
    assert retention_warnings(load(write(MOCK + "}\n"))) == ()


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        (
            "parking: {retry_schedule: [12h, 13h]}",
            "field 'parking.retry_schedule': its waits add up to 1.04d, longer than the events"
            " topic keeps events (1d)",
        ),
        (
            "breaker: {max_cooldown: 2d}",
            "field 'breaker.max_cooldown': 2d is longer than the events topic keeps events (1d)",
        ),
        (
            "parking: {retention: 1h, retry_schedule: [1h, 1m]}",
            "field 'parking.retention': 1h is shorter than parking.retry_schedule takes (1.02h)",
        ),
    ],
)
def test_what_could_outlive_retention_is_warned_about(write: Write, keys: str, says: str) -> None:
    path = write(MOCK + f", {keys}}}\n")
    (warning,) = retention_warnings(load(path))
    assert warning.startswith(f"{path}: destination 'bq': {says}")


def test_the_topic_s_own_retention_is_what_counts_once_known(write: Write) -> None:
    path = write(MOCK + ", breaker: {max_cooldown: 2h}}\n")
    assert retention_warnings(load(path)) == ()  # within the default day
    warnings = retention_warnings(load(path), retention_seconds=3600)
    (cooldown,) = [w for w in warnings if "'breaker.max_cooldown'" in w]
    assert "2h is longer than the events topic keeps events (1h)" in cooldown
    assert any("'parking.retry_schedule'" in w for w in warnings)  # the default day of retries


def test_check_prints_warnings_and_still_exits_0(write: Write) -> None:
    path = write(MOCK + ", breaker: {max_cooldown: 2d}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "dispatcher", "--manifest", str(path), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"warning: {path}: destination 'bq': field 'breaker.max_")
    assert result.stdout == "ok: 1 manifest(s), 1 destination(s)\n"


# --- the documentation's examples ----------------------------------------------------------

DOCS = Path(__file__).parents[2] / "docs" / "manifest.md"


def test_the_documented_examples_load_with_what_the_docs_say(tmp_path: Path) -> None:
    blocks = DOCS.read_text(encoding="utf-8").split("```yaml\n")[1:]
    assert len(blocks) >= 2
    manifests = []
    for number, block in enumerate(blocks):
        path = tmp_path / f"example-{number}.yaml"
        path.write_text(block.split("```", 1)[0], encoding="utf-8")
        manifests.append(load(path, {"HOOK_TOKEN": SECRET}))
    everything = manifests[-1]
    assert retention_warnings(everything) == ()
    bigquery, webhook = everything.destinations
    assert bigquery.breaker == BreakerPolicy() and bigquery.parking == ParkingPolicy()
    assert webhook.max_buffered_bytes == 64 * 1024 * 1024
    assert 409 in webhook.options.status_rules().retryable  # type: ignore[attr-defined]
