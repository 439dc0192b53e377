"""``python -m dispatcher`` runs the ``dispatcher`` command."""

from dispatcher.cli import main

main()
