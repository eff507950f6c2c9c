"""API tokens in /api/v1/ (docs/api.md, "API tokens"): list, create (shown once), revoke.

Everyone manages their own tokens; an admin also sees and revokes everyone's and may create
one for another user (``user``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest
from ninja import Router, Schema
from ninja.responses import Status
from pydantic import Field

from meshui.accounts.models import ApiToken
from meshui.accounts.roles import Role, has_role, role_of
from meshui.api.errors import ApiError, Error, ErrorCode
from meshui.policy.audit import record, record_refusal
from meshui.policy.models import Action
from meshui.registry.api import iso_timestamp as iso
from meshui.registry.schemas import DATE_TIME

router = Router(tags=["accounts"])


class TokenOut(Schema):
    id: int
    name: str
    user: str
    prefix: str = Field(description="the token's first characters, to tell tokens apart")
    created_at: str = Field(json_schema_extra=DATE_TIME)
    last_used_at: str | None = Field(json_schema_extra=DATE_TIME)
    revoked: bool


class TokenCreated(TokenOut):
    token: str = Field(description="the token itself: shown this once, never again")


class TokenList(Schema):
    tokens: list[TokenOut]


class TokenIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    user: str | None = Field(None, description="for another user (admins only)")


class Me(Schema):
    username: str
    role: str | None = Field(description="viewer, operator or admin")


def token_json(row: ApiToken) -> dict[str, Any]:
    return {"id": row.pk, "name": row.name, "user": row.user.get_username(),
            "prefix": row.prefix, "created_at": iso(row.created_at),
            "last_used_at": iso(row.last_used_at), "revoked": row.revoked}


def _visible(request: HttpRequest) -> Any:
    rows = ApiToken.objects.select_related("user")
    return rows if has_role(request.user, Role.ADMIN) else rows.filter(user_id=request.user.pk or -1)


def _forbidden(request: HttpRequest, detail: str) -> ApiError:
    record_refusal(request, detail)
    return ApiError(ErrorCode.FORBIDDEN, detail)


@router.get("/me", response={200: Me, 401: Error}, operation_id="getMe",
            summary="Who the caller is, and their role")
def me(request: HttpRequest) -> Any:
    return {"username": request.user.get_username(), "role": role_of(request.user)}


@router.get("/tokens", response={200: TokenList, 401: Error}, operation_id="listTokens",
            summary="Your API tokens (an admin's: everyone's)")
def list_tokens(request: HttpRequest) -> Any:
    if not request.user.is_authenticated:
        raise ApiError(ErrorCode.UNAUTHENTICATED, "log in to use this endpoint")
    return {"tokens": [token_json(row) for row in _visible(request)]}


@router.post("/tokens", response={201: TokenCreated, 400: Error, 401: Error, 403: Error,
                                  404: Error},
             operation_id="createToken", summary="A new API token, shown once")
def create_token(request: HttpRequest, body: TokenIn) -> Any:
    owner: Any = request.user
    if body.user and body.user != owner.get_username():
        if not has_role(owner, Role.ADMIN):
            raise _forbidden(request, "creating a token for another user needs the admin role")
        owner = get_user_model().objects.filter(username=body.user, is_active=True).first()
        if owner is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"there is no active user {body.user!r}")
    with transaction.atomic():
        row, token = ApiToken.issue(owner, body.name)
        record(request, Action.TOKEN_CREATED, detail=f"{row.prefix}... {body.name!r} for "
                                                     f"{owner.get_username()}")
    return Status(201, {**token_json(row), "token": token})


@router.delete("/tokens/{token_id}", response={200: TokenOut, 401: Error, 403: Error,
                                               404: Error},
               operation_id="revokeToken", summary="Revoke an API token (it stops working now)")
def revoke_token(request: HttpRequest, token_id: int) -> Any:
    row = _visible(request).filter(pk=token_id).first()
    if row is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"you have no token {token_id}")
    with transaction.atomic():
        row.revoke()
        record(request, Action.TOKEN_REVOKED, detail=f"{row.prefix}... {row.name!r} of "
                                                     f"{row.user.get_username()}")
    return token_json(row)
