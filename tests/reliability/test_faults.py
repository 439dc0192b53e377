"""Issue 12's quick fault scenarios (1, 4 and 7) on a 3-node cluster of this module's own:
real ingest and dispatcher processes under load, judged by what the sink received against
every 202 ingest sent. ``./just reliability`` runs all of them with more load."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localkafka.cluster import Cluster
from reliability.scenarios import QUICK, SCENARIOS, run_scenario
from tests.kafka_fixtures import TEST_BROKER_SETTINGS
from tests.system.running import unused_ports

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    clients = unused_ports(3)
    controllers = unused_ports(3)
    while abs(controllers - clients) < 3:
        controllers = unused_ports(3)
    nodes = Cluster(
        first_port=clients,
        first_controller_port=controllers,
        state_dir=tmp_path_factory.mktemp("cluster"),
        extra_config=TEST_BROKER_SETTINGS,
    )
    try:
        nodes.up(timeout=240)
        yield nodes
    finally:
        nodes.down()


@pytest.mark.parametrize("key", QUICK)
def test_nothing_acknowledged_is_lost_or_reordered(
    key: str, cluster: Cluster, tmp_path: Path
) -> None:
    (scenario,) = [s for s in SCENARIOS if s.key == key]
    outcome = run_scenario(
        scenario, cluster, tmp_path, users=100, rate=100, warmup=2, after=3, settle=120
    )
    verdict = outcome.verdict
    assert verdict.accepted >= 200, outcome.answers
    lost = f"lost {verdict.lost_by_partition} e.g. {verdict.missing}"
    assert verdict.lost == 0, f"{lost}\n{_logs(tmp_path)}"
    assert verdict.order_violations == 0, _logs(tmp_path)
    assert outcome.recovered, f"did not settle\n{_logs(tmp_path)}"
    assert not outcome.failures


def _logs(workdir: Path, lines: int = 40) -> str:
    """The end of every process's log, for a failure's message."""
    return "\n".join(
        f"--- {log.name}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        for log in sorted(workdir.rglob("*.log"))
    )
