"""The one error shape of the API, ``{"error": <code>, "detail": <text>, ...}`` (docs/api.md).

``ErrorCode`` is the vocabulary: every code the API answers with, the HTTP status it goes
with, and the ``enum`` of the ``Error`` schema in the generated OpenAPI document. Views
raise ``ApiError``; the handlers
``install_error_handlers`` adds turn it, and django-ninja's own refusals (a parameter that
fails validation, a caller without a session), into that shape.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, ValidationError
from pydantic import Field

from meshui.redis_clients import RETRY_AFTER

logger = logging.getLogger(__name__)


class ErrorCode(StrEnum):
    """Stable error codes; whether a retry can help is in docs/api.md, "Errors"."""

    INVALID_PARAMETER = "invalid_parameter"  # fix the request
    UNAUTHENTICATED = "unauthenticated"  # log in first
    CSRF_FAILED = "csrf_failed"  # fetch a CSRF token
    FORBIDDEN = "forbidden"  # the user's role does not allow it
    NOT_FOUND = "not_found"  # no such revision, service or token
    METHOD_NOT_ALLOWED = "method_not_allowed"  # the Allow header lists the methods
    INVALID_POLICY = "invalid_policy"  # the sidecars would reject the document; fix `field`
    STALE_PARENT = "stale_parent"  # someone wrote a newer revision: rebase and retry
    DATA_SOURCE_UNAVAILABLE = "data_source_unavailable"  # transient, retry later

    @property
    def status(self) -> int:
        """The HTTP status every answer with this code has."""
        return STATUS[self]


STATUS = {
    ErrorCode.INVALID_PARAMETER: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.CSRF_FAILED: 403,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.INVALID_POLICY: 400,
    ErrorCode.STALE_PARENT: 409,
    ErrorCode.DATA_SOURCE_UNAVAILABLE: 503,
}


class Error(Schema):
    """An error; ``error`` is a stable code, ``detail`` says what to fix."""

    error: ErrorCode
    detail: str
    parameter: str | None = Field(None, description="the offending parameter (400 only)")
    field: str | None = Field(None, description="the policy field at fault, dotted "
                                               "(invalid_policy only)")


def json_error(error: ErrorCode, detail: str, **extra: Any) -> JsonResponse:
    """The error response: ``{"error": code, "detail": text, ...extra}``, with the code's status."""
    return JsonResponse({"error": error, "detail": detail, **extra}, status=error.status)


def unauthenticated() -> JsonResponse:
    """401: the caller must log in (the API's handler and the schema's guard both answer it)."""
    return json_error(ErrorCode.UNAUTHENTICATED, "log in to use this endpoint")


class ApiError(Exception):
    """Raised by a view to answer with the error shape (and any headers it needs)."""

    def __init__(self, error: ErrorCode, detail: str, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = error.status
        self.error = error
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> JsonResponse:
        response = json_error(self.error, self.detail, **self.extra)
        for name, value in self.headers.items():
            response[name] = value
        return response


class Refused(Exception):
    """A response decided before the view ran (the CSRF failure view's), answered as is."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def data_source_unavailable(request: HttpRequest, exc: BaseException) -> ApiError:
    """Redis is down or restarting: transient, so 503 + Retry-After, never a 500 (issue 6)."""
    logger.warning("%s %s: Redis unavailable: %s", request.method, request.path, exc)
    return ApiError(
        ErrorCode.DATA_SOURCE_UNAVAILABLE,
        f"the live graph store (Redis) is unavailable ({type(exc).__name__}); "
        f"retry in {RETRY_AFTER} s",
        headers={"Retry-After": str(RETRY_AFTER)})


# ``openapi_extra`` of an operation that answers 503 data_source_unavailable.
RETRY_AFTER_DOC: dict[str, Any] = {"responses": {ErrorCode.DATA_SOURCE_UNAVAILABLE.status: {
    "description": f"`{ErrorCode.DATA_SOURCE_UNAVAILABLE}`: Redis, which holds the live state, "
                   "cannot be reached; transient, retry after `Retry-After` seconds",
    "headers": {"Retry-After": {"schema": {"type": "integer"},
                                "description": "seconds to wait before retrying"}},
}}}


def invalid_parameter(exc: ValidationError) -> ApiError:
    """django-ninja's 422 as our 400: the first failing parameter, named, with why.

    A parameter's own check raises ValueError with a sentence meant for the caller (e.g.
    "window must be between 1 and 3600 seconds, got 0"): that sentence is the detail.
    Other failures (a missing or mistyped value) say what pydantic found.
    """
    first = exc.errors[0]
    location = [str(part) for part in first.get("loc", ())]
    # ("query", "window") -> "window"; a body field ("body", "payload", "name") -> "payload.name"
    parameter = ".".join(location[1:]) or ".".join(location)
    context = first.get("ctx") or {}
    if first.get("type") == "value_error" and "error" in context:
        detail = str(context["error"])
    else:
        detail = f"{parameter}: {first.get('msg', 'invalid value')}"
    return ApiError(ErrorCode.INVALID_PARAMETER, detail, parameter=parameter)


def install_error_handlers(api: NinjaAPI) -> None:
    """Answer every refusal of ``api`` in the error shape."""

    @api.exception_handler(ApiError)
    def on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        return exc.response()

    @api.exception_handler(Refused)
    def on_refused(request: HttpRequest, exc: Refused) -> HttpResponse:
        return exc.response

    @api.exception_handler(ValidationError)
    def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        return invalid_parameter(exc).response()

    @api.exception_handler(AuthenticationError)
    def on_unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return unauthenticated()


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF refusals as JSON on the API, Django's page elsewhere (CSRF_FAILURE_VIEW)."""
    if request.path.startswith("/api/"):
        return json_error(ErrorCode.CSRF_FAILED, f"CSRF verification failed: {reason}")
    from django.views.csrf import csrf_failure as default

    return default(request, reason)
