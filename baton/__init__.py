"""baton keeps opencode sessions running when model providers fail."""

__all__ = ["__version__"]

__version__ = "0.1.0"
