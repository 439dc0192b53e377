"""Settings are checked whole at start-up and shape the producer's limits."""

from __future__ import annotations

import pytest

from eventlog.topics import RETENTION_24H_MS
from ingest.exceptions import SettingsError
from ingest.settings import KAFKA_MESSAGE_LIMIT, IngestSettings


def test_the_defaults_are_valid_and_keep_events_a_day() -> None:
    settings = IngestSettings()
    assert settings.topic_spec.partitions == 12
    assert settings.topic_spec.retention_ms == RETENTION_24H_MS


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as exc:
        IngestSettings(topic=" ", partitions=0, ack_timeout=0.0, backpressure_wait=float("nan"))
    message = str(exc.value)
    for name in ("topic", "partitions", "ack_timeout", "backpressure_wait"):
        assert name in message


def test_events_must_fit_in_a_kafka_record() -> None:
    with pytest.raises(SettingsError, match="max_event_bytes"):
        IngestSettings(max_event_bytes=KAFKA_MESSAGE_LIMIT)


def test_a_batch_of_one_largest_event_must_fit() -> None:
    with pytest.raises(SettingsError, match="max_batch_bytes"):
        IngestSettings(max_event_bytes=2000, max_batch_bytes=1000)


def test_the_producer_queue_can_hold_everything_the_admitted_requests_carry() -> None:
    settings = IngestSettings(
        max_concurrent_requests=10, max_batch_events=100, max_batch_bytes=1024 * 1024
    )
    overrides = settings.producer_overrides()
    assert overrides["queue.buffering.max.messages"] >= 10 * 100
    assert overrides["queue.buffering.max.kbytes"] >= 10 * 1024
    assert overrides["delivery.timeout.ms"] == settings.ack_timeout * 1000
    assert overrides["allow.auto.create.topics"] is False


def test_shutdown_waits_as_long_as_a_request_can_take() -> None:
    settings = IngestSettings(backpressure_wait=1.5, ack_timeout=4.0)
    assert settings.drain_seconds >= 5.5


def test_settings_survive_the_trip_to_worker_processes() -> None:
    settings = IngestSettings(topic="t", max_batch_events=7, ack_timeout=2.5)
    assert IngestSettings(**settings.to_dict()) == settings


@pytest.mark.parametrize(("factor", "expected"), [(1, 1), (2, 1), (3, 2), (5, 2)])
def test_min_insync_replicas_defaults_to_one_less_than_the_replication_factor(
    factor: int, expected: int
) -> None:
    spec = IngestSettings(replication_factor=factor).topic_spec
    assert (spec.replication_factor, spec.min_insync_replicas) == (factor, expected)
    assert (
        IngestSettings(replication_factor=3, min_insync_replicas=3).topic_spec.min_insync_replicas
        == 3
    )


def test_min_insync_replicas_cannot_exceed_the_replication_factor() -> None:
    with pytest.raises(SettingsError, match="min_insync_replicas"):
        IngestSettings(replication_factor=2, min_insync_replicas=3)


def test_connection_limits_are_checked_with_the_rest() -> None:
    with pytest.raises(SettingsError) as exc:
        IngestSettings(header_timeout=0, body_timeout=float("inf"), max_connections=0)
    for name in ("header_timeout", "body_timeout", "max_connections"):
        assert name in str(exc.value)
    limits = IngestSettings(max_header_bytes=4096, keep_alive_timeout=2.0).connection_limits
    assert (limits.max_header_bytes, limits.keep_alive_timeout) == (4096, 2.0)
