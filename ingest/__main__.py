"""``python -m ingest``: the same as the ``ingest`` command."""

from ingest.cli import main

main(prog_name="ingest")
