"""Running a benchmark's quick mode, and reading the markdown results files it writes."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

__all__ = ["run_quick", "table_rows"]

REPO = Path(__file__).resolve().parents[2]


def run_quick(
    module: str, args: str, *, bootstrap: str, results_dir: Path, results_name: str = ""
) -> str:
    """Run ``python -m <module> --quick ARGS`` against ``bootstrap``; return its report (the
    file ``results_name``, by default the one named for the module)."""
    argv = [sys.executable, "-m", module, "--quick", *shlex.split(args)]
    argv += ["--results-dir", str(results_dir)]
    result = subprocess.run(
        argv,
        cwd=REPO,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    (results_dir / "stderr.txt").write_text(result.stderr)  # what went wrong, for assertions
    name = module.rsplit(".", 1)[1].removeprefix("bench_")
    return (results_dir / (results_name or f"{name}.md")).read_text()


def table_rows(markdown: str, heading: str) -> list[list[str]]:
    """The body rows of the first table under ``## <heading>`` (``""``: before any heading),
    as cells."""
    section = markdown.split(f"## {heading}", 1)[1] if heading else markdown
    section = section.split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
