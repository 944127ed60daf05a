"""Runtime model fallback: error classification, retry-status keys and the per-session policy."""

__all__: list[str] = []
