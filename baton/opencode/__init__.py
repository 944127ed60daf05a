"""The adapter to opencode: the only code that talks to it (HTTP client, event parsing)."""

__all__: list[str] = []
