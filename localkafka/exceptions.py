"""Errors raised while bringing a local Kafka broker up or down."""

from __future__ import annotations

__all__ = ["BrokerError", "MissingPrerequisiteError"]


class BrokerError(Exception):
    """The local broker could not be started, reached or stopped."""


class MissingPrerequisiteError(BrokerError):
    """Neither a Docker engine nor the tools to run Kafka natively (Java 17+, Maven) exist."""
