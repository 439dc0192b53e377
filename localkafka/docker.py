"""Running the broker through ``docker compose`` where a Docker engine answers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["compose", "engine_answers"]

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.yaml"


def engine_answers() -> bool:
    """True if a Docker client exists *and* its engine answers (the client alone is not enough)."""
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def compose(*args: str) -> None:
    """Run ``docker compose -f docker-compose.yaml ARGS`` and fail loudly if it fails."""
    subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), *args], check=True)
