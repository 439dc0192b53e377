"""``python -m reliability`` (``just reliability``): run the fault scenarios against the 3-node
cluster (started if needed, left running) and write the table to ``docs/reliability.md``."""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import click

from localkafka.cluster import Cluster
from reliability.report import current_commit, render
from reliability.scenarios import SCENARIOS, Outcome, run_scenario

REPORT = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


@click.command()
@click.option(
    "--scenario",
    "keys",
    multiple=True,
    type=click.Choice([s.key for s in SCENARIOS]),
    help="Run only these (repeatable); default: all.",
)
@click.option("--users", default=300, show_default=True, help="Users sending at once.")
@click.option("--rate", default=300.0, show_default=True, help="Events per second in all.")
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where the table goes [docs/reliability.md when every scenario runs; with"
    " --scenario, only printed, so a partial run never replaces the full report].",
)
def main(keys: tuple[str, ...], users: int, rate: float, report: Path | None) -> None:
    """Each scenario under load; exit 1 if any lost an event, broke per-user order or did not
    recover. Processes' logs stay in a temporary folder (printed) when a scenario fails."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cluster = Cluster.from_environment()
    chosen = [s for s in SCENARIOS if not keys or s.key in keys]
    workdir = Path(tempfile.mkdtemp(prefix="reliability-"))
    commit = current_commit()
    outcomes: list[Outcome] = []
    for scenario in chosen:
        click.echo(f"--- {scenario.title}")
        outcome = run_scenario(scenario, cluster, workdir, users=users, rate=rate)
        outcomes.append(outcome)
        v = outcome.verdict
        click.echo(
            f"    accepted={v.accepted} lost={v.lost} duplicated={v.duplicated} "
            f"order_violations={v.order_violations} recovered={outcome.recovered} "
            f"unavailable={outcome.longest_unavailable:.1f}s {'; '.join(outcome.failures)}"
        )
    text = render(outcomes, users=users, rate=rate, commit=commit)
    if report is None and not keys:
        report = REPORT
    if report is None:
        click.echo(text)
        click.echo(f"(a partial run: docs/reliability.md left as it was); logs in {workdir}")
    else:
        report.write_text(text)
        click.echo(f"wrote {report}; logs in {workdir}")
    sys.exit(0 if all(o.passed for o in outcomes) else 1)


if __name__ == "__main__":
    main()
