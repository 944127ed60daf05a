"""Model identifiers: one normal form, ``"provider/model"``, at every boundary.

opencode writes a model as ``"p/m"``, ``{providerID, modelID}`` or ``{providerID, id}``
depending on where it appears; an object-shaped model once crashed the upstream plugin.
Everything that enters baton goes through :func:`normalize_model` first.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["model_key", "normalize_model", "same_model", "split_model", "to_api_model"]


def normalize_model(value: object) -> str | None:
    """Return ``"provider/model"`` for any shape opencode uses, or None when there is no model."""
    if isinstance(value, str):
        text = value.strip()
        return text if "/" in text and not text.startswith("/") else None
    if isinstance(value, Mapping):
        provider = value.get("providerID")
        model = value.get("modelID", value.get("id"))
        if isinstance(provider, str) and isinstance(model, str) and provider and model:
            return f"{provider}/{model}"
    return None


def split_model(model: str) -> tuple[str, str]:
    """Split at the first ``/``: the model ID may itself contain slashes."""
    provider, _, model_id = model.partition("/")
    return provider, model_id


def to_api_model(model: str) -> dict[str, str]:
    """The ``{providerID, modelID}`` object opencode's prompt endpoints take."""
    provider, model_id = split_model(model)
    return {"providerID": provider, "modelID": model_id}


def model_key(model: str) -> str:
    """Comparison key: case-insensitive, with ``.`` and ``-`` treated alike."""
    return model.strip().lower().replace(".", "-")


def same_model(a: str | None, b: str | None) -> bool:
    """True when two model names denote the same model (see :func:`model_key`)."""
    return a is not None and b is not None and model_key(a) == model_key(b)
