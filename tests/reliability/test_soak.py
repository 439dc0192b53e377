"""The soak's picture and summary, from samples (the 30-minute run itself is not in CI)."""

from __future__ import annotations

from pathlib import Path

from reliability.check import Verdict
from reliability.soak import Sample, draw, summary


def samples() -> list[Sample]:
    return [
        Sample(m / 6, {"ingest": 80.0 + m, "dispatcher": 120.0}, {"ingest": 30, "dispatcher": 60},
               {"ingest": 12, "dispatcher": 40}, None if m == 2 else 10 * m)
        for m in range(6)
    ]  # fmt: skip


def test_draw_writes_a_png_with_every_panel(tmp_path: Path) -> None:
    path = tmp_path / "soak.png"
    draw(samples(), [0.5], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_summary_says_lost_and_duplicated_and_first_to_last() -> None:
    verdict = Verdict(accepted=100, delivered=100, lost=0, duplicated=7, order_violations=0,
                      unacknowledged=0)  # fmt: skip
    text = summary(verdict, samples(), minutes=30, rate=200)
    assert "| 100 | 100 | **0** | 7 | 0 |" in text
    assert "| ingest | 80 → 85 | 30 → 30 | 12 → 12 |" in text
    assert "![RSS, file descriptors, threads and lag over the soak](soak.png)" in text


def test_a_soak_cut_short_says_when_and_why() -> None:
    verdict = Verdict(accepted=1, delivered=0, lost=1, duplicated=0, order_violations=0,
                      unacknowledged=0)  # fmt: skip
    text = summary(verdict, samples(), minutes=30, rate=200, failure="dispatcher-1 exited")
    assert "Stopped early, at minute 1: dispatcher-1 exited" in text
