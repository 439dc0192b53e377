"""The native broker's configuration file: what a node, a cluster or a test broker gets."""

from __future__ import annotations

from pathlib import Path

from localkafka import NativeBroker
from tests.kafka_fixtures import TEST_BROKER_SETTINGS


def _settings(broker: NativeBroker) -> dict[str, str]:
    broker.state_dir.mkdir(parents=True, exist_ok=True)
    lines = broker._write_config().read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_a_single_node_is_its_own_quorum_with_unreplicated_internal_topics(tmp_path: Path) -> None:
    settings = _settings(NativeBroker(port=9500, controller_port=9501, state_dir=tmp_path))
    assert settings["node.id"] == "1"
    assert settings["controller.quorum.voters"] == "1@127.0.0.1:9501"
    assert settings["offsets.topic.replication.factor"] == "1"
    assert settings["transaction.state.log.min.isr"] == "1"
    assert "log.retention.check.interval.ms" not in settings


def test_a_cluster_node_names_the_whole_quorum_and_replicates_internal_topics(
    tmp_path: Path,
) -> None:
    voters = "1@127.0.0.1:9601,2@127.0.0.1:9602,3@127.0.0.1:9603"
    node = NativeBroker(
        port=9512, controller_port=9602, state_dir=tmp_path, node_id=2,
        quorum_voters=voters, internal_replication=3,
    )  # fmt: skip
    settings = _settings(node)
    assert settings["node.id"] == "2"
    assert settings["controller.quorum.voters"] == voters
    assert settings["listeners"] == "PLAINTEXT://127.0.0.1:9512,CONTROLLER://127.0.0.1:9602"
    assert settings["offsets.topic.replication.factor"] == "3"
    assert settings["transaction.state.log.min.isr"] == "2"


def test_test_brokers_check_retention_every_few_seconds(tmp_path: Path) -> None:
    broker = NativeBroker(state_dir=tmp_path, extra_config=TEST_BROKER_SETTINGS)
    settings = _settings(broker)
    assert int(settings["log.retention.check.interval.ms"]) <= 5000
    # Extra settings override the defaults rather than repeat a key.
    override = NativeBroker(state_dir=tmp_path, extra_config={"num.partitions": "7"})
    assert _settings(override)["num.partitions"] == "7"
    lines = override._write_config().read_text().splitlines()
    assert [line for line in lines if line.startswith("num.partitions=")] == ["num.partitions=7"]
