"""librdkafka's lines through Python logging: our format, the destination named, repeats held."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer

from eventlog.clients import consumer_config
from eventlog.kafka_logs import RepeatLimiter, kafka_logger

FAIL_TEXT = (
    "[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed:"
    " Connection refused (after {ms}ms in state CONNECT)"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_repeat_is_held_back_for_the_interval_then_counted() -> None:
    limiter = RepeatLimiter(interval=10)
    assert limiter.admit("a", now=0) == 0
    assert limiter.admit("a", now=1) is None
    assert limiter.admit("a", now=9.9) is None
    assert limiter.admit("b", now=5) == 0, "another line is not held back by the first"
    assert limiter.admit("a", now=10) == 2
    assert limiter.admit("a", now=25) == 0


def confluent_line(logger: logging.Logger, ms: int, level: int = logging.ERROR) -> None:
    """What confluent-kafka calls on its ``logger`` for each librdkafka line."""
    logger.log(level, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", FAIL_TEXT.format(ms=ms))


def test_lines_are_ours_and_repeats_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    logger = kafka_logger("consumer", destination="bigquery-fmt", clock=clock)
    caplog.set_level(logging.INFO)
    for ms in range(4):  # "after 0ms", "after 1ms": one line, numbers aside
        confluent_line(logger, ms)
    logger.log(  # librdkafka's own counter of repeats does not make it another line
        logging.ERROR,
        "%s [%s] %s",
        "FAIL",
        "rdkafka#consumer-1",
        FAIL_TEXT.format(ms=3).replace("CONNECT)", "CONNECT, 4 identical error(s) suppressed)"),
    )
    clock.now += 10
    confluent_line(logger, 7)
    messages = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert messages == [
        "librdkafka FAIL client=consumer destination=bigquery-fmt message='127.0.0.1:1/bootstrap:"
        " Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)'",
        "librdkafka FAIL client=consumer destination=bigquery-fmt message='127.0.0.1:1/bootstrap:"
        " Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 7ms in state CONNECT)'"
        " suppressed=4",
    ]
    assert all(r.levelno == logging.ERROR for r in caplog.records if r.name == logger.name)


def test_each_client_has_its_own_limit(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    first = kafka_logger("consumer", destination="limit-a", clock=clock)
    second = kafka_logger("consumer", destination="limit-b", clock=clock)
    caplog.set_level(logging.INFO)
    confluent_line(first, 0)
    confluent_line(second, 0)
    assert [r.name for r in caplog.records] == [first.name, second.name]
    assert kafka_logger("consumer", destination="limit-a") is first


def test_other_records_pass_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    logger = kafka_logger("producer", destination="plain")
    caplog.set_level(logging.INFO)
    logger.info("hello %s", "there")
    logger.info("hello %s", "there")
    assert [r.getMessage() for r in caplog.records] == ["hello there", "hello there"]


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_a_consumer_with_no_broker_logs_through_python_logging(
    refusing_port: int, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    logger = kafka_logger("consumer", destination="no-broker")
    caplog.set_level(logging.INFO)
    config = consumer_config(f"127.0.0.1:{refusing_port}", "no-broker-group", logger=logger)
    consumer = Consumer(config)
    consumer.subscribe(["nowhere"])
    ours: list[logging.LogRecord] = []
    deadline = time.monotonic() + 20
    try:
        while not ours and time.monotonic() < deadline:
            consumer.poll(0.2)  # librdkafka's lines are served here
            ours = [r for r in caplog.records if r.name == logger.name]
        polls_after = time.monotonic() + 2
        while time.monotonic() < polls_after:  # a down broker: many more attempts, held back
            consumer.poll(0.2)
    finally:
        consumer.close()
    assert ours, "no librdkafka line reached Python logging"
    lines = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert lines[0].startswith("librdkafka FAIL client=consumer destination=no-broker message=")
    assert "Connection refused" in lines[0]
    assert len(lines) <= 2, lines  # the same line, again and again, at most once per 10 s
    assert "%3|" not in capfd.readouterr().err, "raw librdkafka lines reached stderr"
