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


def test_a_write_unacknowledged_past_the_threshold_counts_as_failing_now() -> None:
    # Not only once it times out (ack_timeout, 10 s): until then the instance looked ready.
    health = WriteHealth(hold=10, overdue=2)
    write = health.started(100.0)
    assert health.not_ready_because(101.9) is None
    reason = health.not_ready_because(102.0)
    assert reason is not None
    assert "2.0s" in reason
    health.ended(write)
    health.succeeded(102.5)
    assert health.not_ready_because(102.5) is None


def test_unready_lasts_as_long_as_writes_go_unacknowledged() -> None:
    # A sustained outage: the first writes time out, the hold passes, traffic probes again
    # and hangs as well. Readiness must not come back while that traffic is unacknowledged.
    health = WriteHealth(hold=10, overdue=2)
    first = health.started(0.0)
    assert health.not_ready_because(5.0) is not None  # overdue: before it even times out
    health.ended(first)
    health.failed(10.0, "kafka-timeout")
    assert health.not_ready_because(15.0) is not None
    probe = health.started(20.0)  # the hold is over: a load balancer sends a little again
    assert health.not_ready_because(22.0) is not None
    assert health.not_ready_because(29.9) is not None
    health.ended(probe)
    health.failed(30.0, "kafka-timeout")
    assert health.not_ready_because(39.9) is not None


def test_an_acknowledgement_after_a_write_became_overdue_says_kafka_answers() -> None:
    # Others' writes are acknowledged meanwhile: the cluster takes writes, this one is slow.
    health = WriteHealth(hold=10, overdue=2)
    health.started(0.0)
    assert health.not_ready_because(3.0) is not None
    health.succeeded(3.5)
    assert health.not_ready_because(4.0) is None
    later = health.started(5.0)
    assert health.not_ready_because(7.5) is not None  # a new one overdue, none acknowledged
    health.ended(later)
    assert health.not_ready_because(7.5) is None


def test_writes_still_in_flight_are_judged_by_the_oldest() -> None:
    health = WriteHealth(hold=10, overdue=2)
    old = health.started(0.0)
    health.started(1.5)
    health.ended(old)
    assert health.not_ready_because(3.0) is None  # the one left started at 1.5
    assert health.not_ready_because(3.5) is not None
