"""Values every template sees, so pages and their scripts never hard-code them."""

from __future__ import annotations

from typing import Any

from flask import Flask

from inference.labels import EMOTIONS

_REGISTERED_KEY = "moodlens.template_context"


def template_context() -> dict[str, Any]:
    """``emotions``: the labels in model order (``base.html`` hands them to the scripts)."""
    return {"emotions": list(EMOTIONS)}


def register(app: Flask) -> None:
    """Add :func:`template_context` to ``app``'s templates (once, however often it is called)."""
    if app.extensions.get(_REGISTERED_KEY):
        return
    app.context_processor(template_context)
    app.extensions[_REGISTERED_KEY] = True
