"""Readiness from the outcome of the latest writes, with the time given."""

from __future__ import annotations

from ingest.write_health import WriteHealth


def test_a_failed_write_makes_ingest_unready_until_one_succeeds() -> None:
    health = WriteHealth(hold=10)
    assert health.not_ready_because(0.0) is None
    health.succeeded(1.0)
    health.failed(2.0, "kafka-timeout")
    reason = health.not_ready_because(3.0)
    assert reason is not None
    assert "kafka-timeout" in reason
    health.succeeded(4.0)
    assert health.not_ready_because(4.0) is None


def test_without_writes_to_show_otherwise_unready_lasts_the_hold() -> None:
    # An unready instance gets no traffic: it must not stay unready for ever.
    health = WriteHealth(hold=10)
    health.failed(100.0, "kafka-error")
    assert health.not_ready_because(109.9) is not None
    assert health.not_ready_because(110.0) is None
    health.failed(111.0, "kafka-error")  # probing traffic fails again: unready again
    assert health.not_ready_because(111.0) is not None
