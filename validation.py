"""What every pydantic model of the API shares: refusing with our codes, and omitted fields.

The models (request bodies in ``web/schemas.py``, history filters in
``services/predictions/filters.py``) are the one place inputs are parsed, and the OpenAPI
document is generated from them. A validator that needs a precise answer raises
:func:`refuse` (its code and status travel in the pydantic error); anything else pydantic
finds (a wrong type) is a ``400 invalid_request`` naming the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError
from pydantic_core import PydanticCustomError

from errors import EmotionAppError, InvalidInput


def refuse(code: str, message: str, status: int = 400) -> PydanticCustomError:
    """A pydantic error that :func:`input_error` turns into ``status {"error": {"code", "message"}}``."""
    return PydanticCustomError(code, message, {"status": status})


def input_error(exc: ValidationError) -> EmotionAppError:
    """The first problem pydantic found, as the error the API answers with."""
    details = exc.errors(include_url=False)
    custom = [d for d in details if isinstance(d.get("ctx"), dict) and "status" in d["ctx"]]
    if custom:
        detail = custom[0]
        error = EmotionAppError(detail["msg"], code=detail["type"])
        error.status = int(detail["ctx"]["status"])
        return error
    detail = details[0]
    where = ".".join(str(part) for part in detail["loc"]) or "body"
    return InvalidInput(f"{where}: {detail['msg']}"[:300], code="invalid_request")


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omitted(**kwargs: Any) -> Any:
    """A field that may be left out (None then) but not sent as null.

    Left out, the service refuses it with its own precise code (``invalid_email``,
    ``missing_credentials``, ...); sent with the wrong type, pydantic answers 400. The
    document shows no ``default: null``, which would invite a null.
    """
    extra = kwargs.pop("json_schema_extra", None)

    def schema_extra(schema: dict[str, Any]) -> None:
        _no_default(schema)
        if callable(extra):
            extra(schema)
        elif extra:
            schema.update(extra)

    return Field(default=None, json_schema_extra=schema_extra, **kwargs)


def documented_required(schema: dict[str, Any], model: type[Any]) -> None:
    """``json_schema_extra`` of a model: its ``required_fields`` are required in the document.

    They are validated as :func:`omitted` fields, so a missing one reaches the service, which
    answers with a more precise code than pydantic's "Field required" could.
    """
    required = list(getattr(model, "required_fields", ()))
    if required:
        schema["required"] = required
