"""What ``just up`` chooses to run: compose, the whole Procfile, or the Procfile without kafka."""

from __future__ import annotations

from pathlib import Path

from localkafka.stack import PROCFILE, StackPlan, plan_stack, process_counts, procfile_processes

PROCESSES = ["kafka", "ingest", "dispatcher-a", "dispatcher-b"]


def _plan(*, docker: bool, pid: int | None, answers: bool) -> StackPlan:
    return plan_stack(
        docker_answers=docker,
        broker_pid=pid,
        broker_answers=answers,
        bootstrap="127.0.0.1:9092",
        processes=PROCESSES,
        compose_file=Path("/repo/docker-compose.yaml"),
    )


def test_no_broker_and_no_docker_runs_the_whole_procfile() -> None:
    plan = _plan(docker=False, pid=None, answers=False)
    assert plan.runner == "honcho"
    assert plan.command == tuple(PROCESSES)
    assert "starting kafka, ingest, dispatcher-a, dispatcher-b" in plan.summary


def test_a_running_native_broker_is_used_not_started_again() -> None:
    plan = _plan(docker=True, pid=4242, answers=False)
    assert plan.runner == "honcho"
    assert plan.command == ("ingest", "dispatcher-a", "dispatcher-b")
    assert "pid 4242" in plan.summary


def test_a_broker_that_answers_but_is_not_ours_is_used_too() -> None:
    plan = _plan(docker=False, pid=None, answers=True)
    assert plan.runner == "honcho"
    assert "kafka" not in plan.command
    assert "not started by us" in plan.summary


def test_docker_runs_compose_in_the_foreground() -> None:
    plan = _plan(docker=True, pid=None, answers=False)
    assert plan.runner == "compose"
    assert plan.command == ("docker", "compose", "-f", "/repo/docker-compose.yaml", "up", "--build")


def test_procfile_processes_skip_comments_and_keep_order() -> None:
    text = "# kafka: not a process\nkafka: run it\n\nweb:serve\nbad line\n"
    assert procfile_processes(text) == ["kafka", "web"]


def test_the_repository_procfile_has_the_processes_up_expects() -> None:
    assert procfile_processes(PROCFILE.read_text()) == PROCESSES


def test_up_gives_half_the_cores_to_ingest_and_half_to_the_shards() -> None:
    counts = {cores: process_counts(cores) for cores in (1, 2, 4, 8, 32)}
    assert {c: (p.ingest_workers, p.dispatcher_processes) for c, p in counts.items()} == {
        1: (1, 1), 2: (1, 1), 4: (2, 1), 8: (4, 2), 32: (4, 8),
    }  # fmt: skip


def test_the_procfile_and_compose_pass_the_counts_on() -> None:
    procfile = PROCFILE.read_text()
    assert procfile.count('--processes "${DISPATCHER_PROCESSES:-1}"') == 2
    compose = (PROCFILE.parent / "docker-compose.yaml").read_text()
    assert compose.count('"--processes", "${DISPATCHER_PROCESSES:-1}"') == 2
    assert "INGEST_WORKERS: ${INGEST_WORKERS:-1}" in compose
