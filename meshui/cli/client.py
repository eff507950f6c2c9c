"""The HTTP side of meshctl: one request to ``/api/v1/``, its answer or a ``CliError``.

Every failure becomes a sentence saying what to fix and an exit code (errors.py): no answer,
a timeout or a 5xx is ``UNREACHABLE`` (retrying may help); a 4xx is ``ApiRefusal``, which
keeps the API's error body (``{"error", "detail", ...}``, docs/api.md) for the commands that
say more about a conflict or an invalid policy.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from meshui.cli.config import Target
from meshui.cli.errors import CliError, Exit, unreachable, usage

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
# The largest answer read: the biggest is a page of 100 revisions; a server sending more
# is not a meshui we understand.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
MAX_DETAIL = 500
USER_AGENT = "meshctl/0.1"


class ApiRefusal(CliError):
    """A 4xx answer: the API's ``error`` code and its whole body."""

    def __init__(self, message: str, status: int, body: dict[str, Any]) -> None:
        super().__init__(message, Exit.REFUSED)
        self.status = status
        self.body = body
        self.error = str(body.get("error", ""))

    @property
    def parameter(self) -> str | None:
        """The field at fault of a 400 ``invalid_parameter`` (``rule.recover``)."""
        value = self.body.get("parameter")
        return value if isinstance(value, str) and value else None

    def reason(self) -> str:
        """The detail without the parameter it may start with (pydantic's ``rule.metric:
        Field required``), for a message that names the field its own way."""
        prefix = f"{self.parameter}: "
        return self.message[len(prefix):] if self.message.startswith(prefix) else self.message


def _detail(body: dict[str, Any], fallback: str) -> str:
    detail = body.get("detail")
    return str(detail)[:MAX_DETAIL] if detail else fallback


class ApiClient:
    """Requests to one meshui with one token; a context manager closing its connections."""

    def __init__(self, target: Target, transport: httpx.BaseTransport | None = None) -> None:
        self.target = target
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if target.token:
            headers["Authorization"] = f"Bearer {target.token}"
        self._http = httpx.Client(base_url=f"{target.url}/api/v1", headers=headers,
                                  timeout=TIMEOUT, transport=transport)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, json=body)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON answer of a 2xx; raises ``CliError`` for anything else."""
        where = self.target.url
        try:
            with self._http.stream(method, path, **kwargs) as response:
                raw = _bounded_body(response, where)
        except httpx.TimeoutException:
            raise unreachable(f"meshui at {where} did not answer within "
                              f"{TIMEOUT.read:.0f} s; retry, or check MESHUI_URL") from None
        except httpx.TransportError as exc:
            raise unreachable(f"cannot reach meshui at {where} ({type(exc).__name__}: {exc}); "
                              f"is it running? Set MESHUI_URL or run meshctl login --url URL"
                              ) from None
        return _answer(response, raw, where, self.target.token is not None)


def _bounded_body(response: httpx.Response, where: str) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise unreachable(f"meshui at {where} sent an answer over "
                              f"{MAX_RESPONSE_BYTES // (1024 * 1024)} MiB; is MESHUI_URL a meshui?")
        chunks.append(chunk)
    return b"".join(chunks)


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _answer(response: httpx.Response, raw: bytes, where: str, has_token: bool) -> Any:
    status = response.status_code
    body = _decoded(raw)
    shaped = body if isinstance(body, dict) else {}
    if 200 <= status < 300:
        if body is None:
            raise unreachable(f"{where}{response.request.url.path} answered {status} without "
                              f"JSON; is MESHUI_URL a meshui?")
        return body
    reason = response.reason_phrase or "error"
    if 300 <= status < 400:  # e.g. http:// to https://: say where, never follow with the token
        location = response.headers.get("location", "elsewhere")[:MAX_DETAIL]
        raise usage(f"{where} redirects to {location}; set MESHUI_URL (or meshctl login "
                    f"--url) to meshui's own URL")
    if status >= 500:
        raise unreachable(f"meshui at {where} answered {status} {reason} "
                          f"({_detail(shaped, 'no detail')}); retry later")
    if status == 401:
        if not has_token:
            raise ApiRefusal("not logged in: run meshctl login (or set MESHUI_TOKEN)",
                             status, shaped)
        raise ApiRefusal(f"the API token was refused ({_detail(shaped, 'unauthenticated')}); "
                         f"log in again with a new token: meshctl login", status, shaped)
    if "error" not in shaped:
        raise ApiRefusal(f"{where}{response.request.url.path} answered {status} {reason}; "
                         f"is MESHUI_URL a meshui?", status, shaped)
    raise ApiRefusal(_detail(shaped, f"refused ({status})"), status, shaped)
