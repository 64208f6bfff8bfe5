"""Kubernetes API errors the emulator answers with, as standard ``Status`` objects.

The request handler (``_emulator``) and the object store (``_store``) raise these; the handler
renders them as the JSON ``Status`` a real API server sends, so that kubectl, kopf and the
official client recognise the reason (``NotFound``, ``AlreadyExists``, ``Conflict`` ...)::

    ApiError
    ├── BadRequest            400
    ├── NotFound              404
    ├── MethodNotAllowed      405
    ├── AlreadyExists         409
    ├── Conflict              409  (resourceVersion mismatch)
    ├── Gone                  410  (watch from a resourceVersion older than the event log)
    ├── UnsupportedMediaType  415
    └── Invalid               422
"""

from __future__ import annotations

from typing import Any, ClassVar


class ApiError(Exception):
    """An error with a Kubernetes ``Status`` body; subclasses fix the HTTP code and reason."""

    code: ClassVar[int] = 500
    reason: ClassVar[str] = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        name: str | None = None,
        group: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = {
            key: value
            for key, value in (("name", name), ("group", group), ("kind", kind))
            if value is not None
        }

    def status(self) -> dict[str, Any]:
        """The ``Status`` object a real API server answers with for this error."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = dict(self.details)
        return body


class BadRequest(ApiError):
    code = 400
    reason = "BadRequest"


class NotFound(ApiError):
    code = 404
    reason = "NotFound"


class MethodNotAllowed(ApiError):
    code = 405
    reason = "MethodNotAllowed"


class AlreadyExists(ApiError):
    code = 409
    reason = "AlreadyExists"


class Conflict(ApiError):
    code = 409
    reason = "Conflict"


class Gone(ApiError):
    code = 410
    reason = "Expired"


class UnsupportedMediaType(ApiError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(ApiError):
    code = 422
    reason = "Invalid"
