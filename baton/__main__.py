"""``python -m baton`` runs the CLI."""

from baton.cli import main

__all__: list[str] = []

main()
