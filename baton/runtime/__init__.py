"""The runtime layer: what carries out the pure deciders' actions for one attached opencode."""

__all__: list[str] = []
