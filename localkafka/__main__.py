"""``python -m localkafka``: start, stop and inspect the local development broker, and run the
whole system around it in the foreground (``stack``, what ``just up`` runs)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from localkafka import docker
from localkafka.broker import NativeBroker, kafka_version
from localkafka.cluster import Cluster
from localkafka.exceptions import BrokerError
from localkafka.foreground import run_foreground
from localkafka.readiness import broker_answers, wait_until_ready
from localkafka.stack import PROCFILE, run_stack


def _broker() -> NativeBroker:
    port = int(os.environ.get("KAFKA_PORT", "9092"))
    controller = int(os.environ.get("KAFKA_CONTROLLER_PORT", str(port + 1)))
    return NativeBroker(port=port, controller_port=controller)


@click.group()
def cli() -> None:
    """A single-node KRaft Kafka on 127.0.0.1:9092 (Docker if an engine answers, else native)."""


@cli.command()
@click.option("--native", is_flag=True, help="Run from Maven's jars even if Docker answers.")
def up(native: bool) -> None:
    """Start the broker in the background; return once it accepts clients."""
    broker = _broker()
    if not native and docker.engine_answers():
        docker.compose("up", "-d", "--wait", "kafka")
        click.echo(f"kafka (docker) ready on {broker.bootstrap}")
        return
    pid = broker.running_pid()
    if pid is not None:
        click.echo(f"kafka already running (pid {pid}) on {broker.bootstrap}")
        return
    click.echo(f"starting kafka {kafka_version()} natively; log: {broker.log_file}")
    process = broker.start()
    if not wait_until_ready(broker.bootstrap, still_starting=lambda: process.poll() is None):
        broker.stop(timeout=5)
        raise BrokerError(f"kafka did not become ready; last log lines:\n{broker.tail_log()}")
    click.echo(f"kafka ready (pid {process.pid}) on {broker.bootstrap}")


@cli.command()
@click.option(
    "--linger",
    default=3.0,
    show_default=True,
    help="Seconds to wait at shutdown for consumers to leave their groups.",
)
def run(linger: float) -> None:
    """Run the broker in the foreground (for process runners); Ctrl-C or SIGTERM stops it once
    its consumers have left their groups (at most --linger seconds later)."""
    broker = _broker()
    pid = broker.running_pid()
    if pid is not None:
        raise BrokerError(f"kafka is already running (pid {pid}); stop it with `just kafka-down`")
    sys.exit(run_foreground(broker, linger=linger))


@cli.command()
@click.option("--native", is_flag=True, help="Use honcho and the Procfile even if Docker answers.")
@click.option(
    "--procfile",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=PROCFILE,
    show_default="Procfile",
    help="The processes honcho runs.",
)
def stack(native: bool, procfile: Path) -> None:
    """The whole system in the foreground (`just up`); Ctrl-C or SIGTERM stops all of it."""
    run_stack(_broker(), native=native, procfile=procfile)


@cli.command()
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait.")
def wait(timeout: float) -> None:
    """Block until the broker accepts clients (exit 1 after --timeout)."""
    if not wait_until_ready(_broker().bootstrap, timeout=timeout):
        raise BrokerError(f"kafka did not answer on {_broker().bootstrap} within {timeout:.0f}s")


@cli.command()
@click.option(
    "--stack",
    "whole_stack",
    is_flag=True,
    help="With Docker, remove the whole compose stack's containers, not only stop kafka.",
)
def down(whole_stack: bool) -> None:
    """Stop the broker this project started; its data is kept."""
    broker = _broker()
    pid = broker.running_pid()
    if broker.stop():
        click.echo(f"stopped kafka (pid {pid}); its data stays in {broker.data_dir}")
    elif docker.engine_answers():
        if whole_stack:
            docker.compose("down")
            click.echo("removed the compose stack's containers and network (volume kept)")
        else:
            docker.compose("stop", "kafka")
            click.echo("stopped the kafka container; its data stays in volume kafka-data")
    else:
        click.echo(f"kafka was not running (no live pid in {broker.pid_file})")


@cli.command()
def status() -> None:
    """Say whether the broker runs and answers; exit 1 if it does not answer."""
    broker = _broker()
    pid = broker.running_pid()
    answers = broker_answers(broker.bootstrap)
    click.echo(
        f"pid={pid or '-'} answers={'yes' if answers else 'no'} bootstrap={broker.bootstrap}"
    )
    sys.exit(0 if answers else 1)


@cli.group()
def cluster() -> None:
    """A 3-node KRaft cluster on 127.0.0.1:19092-19094 (KAFKA_CLUSTER_PORT), always native."""


@cluster.command("up")
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait for all.")
def cluster_up(timeout: float) -> None:
    """Start the nodes that are not running; return once all three answer."""
    nodes = Cluster.from_environment()
    click.echo(f"kafka {kafka_version()} cluster; logs in {nodes.state_dir}/node-*/kafka.log")
    started = nodes.up(timeout=timeout)
    what = f"started node(s) {', '.join(map(str, started))}" if started else "all nodes running"
    click.echo(f"{what}; cluster ready on {nodes.bootstrap}")


@cluster.command("status")
def cluster_status() -> None:
    """One line per node, then the bootstrap list; exit 1 unless every node answers."""
    nodes = Cluster.from_environment()
    rows = nodes.status()
    for row in rows:
        click.echo(row.line())
    click.echo(f"bootstrap={nodes.bootstrap}")
    sys.exit(0 if all(row.answers for row in rows) else 1)


@cluster.command("down")
def cluster_down() -> None:
    """Stop exactly the cluster's node processes; their data is kept."""
    nodes = Cluster.from_environment()
    pids = nodes.down()
    if pids:
        click.echo(f"stopped cluster nodes (pids {', '.join(map(str, pids))}); data kept")
    else:
        click.echo("no cluster node was running")


@cli.command()
def clean() -> None:
    """Stop the broker and delete its data, configuration and log (jars stay cached)."""
    broker = _broker()
    pid = broker.running_pid()
    if broker.stop():
        click.echo(f"stopped kafka (pid {pid})")
    if broker.state_dir.exists():
        shutil.rmtree(broker.state_dir)
        click.echo(f"removed {broker.state_dir} (kafka data, log, config)")
    else:
        click.echo(f"nothing to remove at {broker.state_dir}")
    nodes = Cluster.from_environment()
    if nodes.down():
        click.echo("stopped the cluster's nodes")
    if nodes.state_dir.exists():
        shutil.rmtree(nodes.state_dir)
        click.echo(f"removed {nodes.state_dir} (cluster data, logs, config)")
    if docker.engine_answers():
        docker.compose("down", "--volumes")
        click.echo("removed the compose stack's containers, network and kafka-data volume")
    click.echo(f"kept cached jars in {broker.libs_dir.parent}")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BrokerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
