"""The HTTP front door: takes users' events (``PUT /events``, ``POST /events/batch``) and
answers only once Kafka acknowledged them. ``ingest`` (``ingest.cli``) runs it under uvicorn."""

from ingest.app import create_app
from ingest.settings import IngestSettings

__all__ = ["IngestSettings", "create_app"]
