"""baton keeps opencode sessions running when model providers fail."""

__version__ = "0.1.0"
