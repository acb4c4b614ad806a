"""One exception family for the platform, and the API's JSON error shape.

Every error the API returns looks like
``{"error": {"code": "...", "message": "...", "fields": {...}}}``.
"""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class PlatformError(Exception):
    """Base of the domain's errors: a code, a readable message, an HTTP status."""

    code = "error"
    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, fields: dict[str, Any] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code:
            self.code = code


class InvalidInput(PlatformError):
    code = "invalid"


class NotAllowed(PlatformError):
    code = "permission_denied"
    status_code = status.HTTP_403_FORBIDDEN


class NotFound(PlatformError):
    code = "not_found"
    status_code = status.HTTP_404_NOT_FOUND


class Conflict(PlatformError):
    code = "conflict"
    status_code = status.HTTP_409_CONFLICT


def _message_of(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return _message_of(detail[0])
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        text = _message_of(value)
        return text if key == "non_field_errors" else f"{key}: {text}"
    return str(detail)


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, PlatformError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    detail = exc.detail
    fields = detail if isinstance(detail, dict) else {}
    code = exc.get_codes()
    if isinstance(code, (dict, list)):
        code = "invalid"
    response.data = error_body(str(code), _message_of(detail), fields)
    return response
