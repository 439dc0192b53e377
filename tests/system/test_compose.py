"""The Docker path, checked without a Docker engine: docker-compose.yaml and the Dockerfile name
the right images, commands, files and versions."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from typing import Any

import pytest
import yaml

from localkafka import kafka_version
from localkafka.docker import COMPOSE_FILE
from tests.system.running import ROOT

APPS = ("ingest", "dispatcher-a", "dispatcher-b")
SHARDS = {"dispatcher-a": "manifests/shard-a.yaml", "dispatcher-b": "manifests/shard-b.yaml"}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


@pytest.fixture(scope="module")
def scripts() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(pyproject["project"]["scripts"])


def _listeners(setting: str) -> dict[str, str]:
    """``NAME://host:port,...`` -> {NAME: "host:port"}."""
    return dict(item.split("://", 1) for item in setting.split(","))


def test_the_compose_file_is_the_one_localkafka_uses() -> None:
    assert ROOT / "docker-compose.yaml" == COMPOSE_FILE


def test_every_service_is_there(services: dict[str, dict[str, Any]]) -> None:
    default = {name for name, service in services.items() if not service.get("profiles")}
    assert default == {"kafka", "jaeger", *APPS}


def test_the_cluster_profile_is_three_replicated_nodes_of_one_quorum(
    services: dict[str, dict[str, Any]],
) -> None:
    nodes = {n: s for n, s in services.items() if "cluster" in s.get("profiles", [])}
    assert set(nodes) == {"kafka-1", "kafka-2", "kafka-3"}
    environments = [nodes[f"kafka-{n}"]["environment"] for n in (1, 2, 3)]
    assert [env["KAFKA_NODE_ID"] for env in environments] == [1, 2, 3]
    assert len({env["CLUSTER_ID"] for env in environments}) == 1
    voters = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in environments}
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    assert all(env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3 for env in environments)
    assert all(env["KAFKA_MIN_INSYNC_REPLICAS"] == 2 for env in environments)
    # The native cluster's host ports, so `./just reliability` finds either.
    ports = [nodes[f"kafka-{n}"]["ports"] for n in (1, 2, 3)]
    assert ports == [[f"127.0.0.1:{p}:{p}"] for p in (19092, 19093, 19094)]
    for env in environments:
        listeners = env["KAFKA_LISTENERS"].split(",")
        assert len({listener.rsplit(":", 1)[1] for listener in listeners}) == len(listeners)


def test_kafka_runs_the_version_pinned_in_the_pom(services: dict[str, dict[str, Any]]) -> None:
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version()}"


def test_kafka_is_reachable_from_the_host_and_from_containers(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka = services["kafka"]
    env = kafka["environment"]
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    listening = _listeners(env["KAFKA_LISTENERS"])
    protocol_map = env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    protocols = dict(item.split(":") for item in protocol_map.split(","))
    assert advertised["PLAINTEXT_HOST"] == "localhost:9092"  # what localkafka's clients use
    assert "127.0.0.1:9092:9092" in kafka["ports"]
    host, port = advertised["PLAINTEXT"].split(":")
    assert host == "kafka"  # the service's name on the compose network
    for name in advertised:
        assert name in listening and name in protocols
        assert listening[name].rsplit(":", 1)[1] == advertised[name].rsplit(":", 1)[1]
    for app in APPS:
        assert services[app]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == f"kafka:{port}"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, one node
    assert "healthcheck" in kafka


def test_apps_start_once_kafka_is_healthy(services: dict[str, dict[str, Any]]) -> None:
    for app in APPS:
        depends = services[app]["depends_on"]
        assert depends["kafka"] == {"condition": "service_healthy"}, app


def test_apps_share_one_image_built_here(services: dict[str, dict[str, Any]]) -> None:
    images = {services[app]["image"] for app in APPS}
    assert len(images) == 1
    for app in APPS:
        assert services[app]["build"] == "."


def test_each_command_is_a_console_script_with_existing_files(
    services: dict[str, dict[str, Any]], scripts: set[str]
) -> None:
    for app in APPS:
        command = services[app]["command"]
        assert command[0] in scripts, app
    assert services["ingest"]["command"][0] == "ingest"
    for app, manifest in SHARDS.items():
        command = services[app]["command"]
        assert command[0] == "dispatcher"
        assert command[command.index("--manifest") + 1] == manifest
        assert (ROOT / manifest).is_file()


def test_ingest_serves_8080_with_a_health_check(services: dict[str, dict[str, Any]]) -> None:
    ingest = services["ingest"]
    command = ingest["command"]
    assert command[command.index("--port") + 1] == "8080"
    assert command[command.index("--host") + 1] == "0.0.0.0"  # reachable through the port map
    assert "127.0.0.1:8080:8080" in ingest["ports"]
    probe = " ".join(ingest["healthcheck"]["test"])
    assert "http://127.0.0.1:8080/readyz" in probe or "http://127.0.0.1:8080/healthz" in probe


def test_traces_go_to_jaeger(services: dict[str, dict[str, Any]]) -> None:
    jaeger = services["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one:")
    published = {port.rsplit(":", 1)[1] for port in jaeger["ports"]}
    assert {"16686", "4317", "4318"} <= published
    names = set()
    for app in APPS:
        env = services[app]["environment"]
        assert env["OTEL_TRACES_EXPORTER"] == "otlp"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
        names.add((env["OTEL_SERVICE_NAME"], env.get("OTEL_RESOURCE_ATTRIBUTES")))
    assert len(names) == len(APPS)  # each process tells itself apart in Jaeger


def test_kafka_keeps_its_data_in_a_named_volume(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"]
    assert f"kafka-data:{log_dirs}" in kafka["volumes"]
    assert "kafka-data" in yaml.safe_load(COMPOSE_FILE.read_text())["volumes"]


# --- Dockerfile -------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def _copy_sources() -> list[str]:
    sources = []
    for word, rest in _instructions():
        if word == "COPY" and "--from=" not in rest:
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            sources.extend(parts[:-1])
    return sources


def test_the_image_is_built_in_two_stages_and_runs_as_a_user() -> None:
    stages = [rest for word, rest in _instructions() if word == "FROM"]
    assert len(stages) >= 2
    assert " AS " in stages[0].upper()
    users = [rest for word, rest in _final_stage() if word == "USER"]
    assert users
    assert users[-1] not in {"root", "0"}


def test_the_final_stage_installs_the_built_wheels_without_dev_dependencies() -> None:
    final = " ".join(rest for word, rest in _final_stage() if word == "RUN")
    assert "--no-index" in final
    assert "[dev]" not in final
    assert "from=build" in final


def test_the_default_command_is_a_console_script(scripts: set[str]) -> None:
    commands = [rest for word, rest in _final_stage() if word in {"CMD", "ENTRYPOINT"}]
    assert commands
    for command in commands:
        assert yaml.safe_load(command)[0] in scripts  # exec form is a JSON list


def test_every_copied_path_exists_and_is_not_docker_ignored() -> None:
    ignored = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in _copy_sources():
        path = source.rstrip("/")
        assert (ROOT / path).exists(), source
        assert not any(fnmatch.fnmatch(path, pattern) for pattern in ignored), source


def test_the_image_gets_every_package_and_the_manifests() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    copied = {source.rstrip("/") for source in _copy_sources()}
    assert {"pyproject.toml", pyproject["project"]["readme"], *packages} <= copied
    assert "manifests" in copied
