"""Test tooling that reproduces model-provider failures offline against the real opencode binary.

`fake_provider` is a scriptable OpenAI-compatible server; `opencode` starts and
stops real `opencode serve` instances wired to it.
"""

__all__: list[str] = []
