"""``python -m baton`` runs the CLI."""

from baton.cli import main

main()
