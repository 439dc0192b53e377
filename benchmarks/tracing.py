"""Tracing on versus off (issue 7): how a service is started either way, and the "Tracing
cost" table both benchmarks write.

Off is a service without ``OTEL_*`` variables: no SDK, no spans built. On samples every trace
(``always_on``) and exports it over OTLP/HTTP to a ``span_counter`` on loopback, whose count
shows tracing really was on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.report import markdown_table

__all__ = ["TRACING_OFF", "TRACING_ON", "Cost", "cost_table", "tracing_env"]

TRACING_OFF = "tracing off"
TRACING_ON = "tracing on"


def tracing_env(endpoint: str) -> dict[str, str]:
    """Environment of a service that samples every trace and exports it to ``endpoint``."""
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }


@dataclass(frozen=True, slots=True)
class Cost:
    """One figure measured with tracing off and on."""

    measure: str
    off: float | None
    on: float | None
    decimals: int = 0


def cost_table(costs: Sequence[Cost]) -> str:
    """The figures side by side with their ratio, on / off."""

    def shown(value: float | None, decimals: int) -> str:
        return "n/a" if value is None else f"{value:,.{decimals}f}"

    rows = [
        [
            cost.measure,
            shown(cost.off, cost.decimals),
            shown(cost.on, cost.decimals),
            f"{cost.on / cost.off:.2f}x" if cost.on is not None and cost.off else "n/a",
        ]
        for cost in costs
    ]
    return markdown_table(["measure", TRACING_OFF, TRACING_ON, "on / off"], rows)
