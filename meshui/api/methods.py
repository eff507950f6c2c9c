"""Every API path answers every method: HEAD as its GET, the others 405 after the access checks.

django-ninja answers a method a path does not declare with a plain-text 405 before any
authentication runs. Ours keeps the order of docs/api.md: the login (401), then CSRF on a
write (403), then ``405 method_not_allowed`` with the ``Allow`` header. So each path gets
one more operation, hidden from the schema, that takes the undeclared methods through the
same authentication and then refuses them; a GET also answers HEAD.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import NoReturn

from django.http import HttpRequest
from ninja import Router

from meshui.api.errors import ApiError, ErrorCode

# Every method an HTTP server hands Django for an API path (CONNECT never reaches a view).
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def not_allowed(request: HttpRequest, allowed: frozenset[str]) -> ApiError:
    """405 for ``request``'s method, naming the methods the path takes."""
    return ApiError(ErrorCode.METHOD_NOT_ALLOWED, f"{request.method} is not allowed here",
                    headers={"Allow": ", ".join(sorted(allowed))})


def refusal(allowed: frozenset[str], params: tuple[str, ...]) -> Callable[..., NoReturn]:
    """The view of the methods a path does not take (``params``: the path's parameters)."""

    def method_not_allowed(request: HttpRequest, **path: str) -> NoReturn:
        raise not_allowed(request, allowed)

    # django-ninja reads a view's path parameters from its signature.
    method_not_allowed.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                           annotation=HttpRequest),
         *(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=str)
           for name in params)])
    return method_not_allowed


def answer_every_method(router: Router) -> None:
    """Complete every path of ``router`` (call it once all its operations are declared)."""
    for path, view in list(router.path_operations.items()):
        declared = {method for operation in view.operations for method in operation.methods}
        name = view.operations[0].view_func.__name__  # URL names of the added operations
        if "GET" in declared and "HEAD" not in declared:
            get = next(op for op in view.operations if "GET" in op.methods)
            # The GET's own view and parameters; the server drops the body of a HEAD answer.
            router.add_api_operation(path, ["HEAD"], get.view_func, include_in_schema=False,
                                     url_name=f"{name}-head")
            declared.add("HEAD")
        undeclared = [method for method in METHODS if method not in declared]
        if undeclared:
            params = tuple(re.findall(r"{(?:\w+:)?(\w+)}", path))
            router.add_api_operation(path, undeclared, refusal(frozenset(declared), params),
                                     include_in_schema=False, url_name=f"{name}-refused")
