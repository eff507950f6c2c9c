"""The identity endpoints of /api/v1/ (docs/api.md, "Identity"): join tokens (admin),
certificates (any reader), the trust bundle (open to anyone, as SPIFFE bundle endpoints are).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Router
from ninja.responses import Status

from meshui.accounts.roles import Role, has_role
from meshui.api.auth import require_role
from meshui.api.errors import ApiError, Error, ErrorCode
from meshui.broadcast import broadcast
from meshui.identity.authority import current_authority
from meshui.identity.joining import REVOKED_MESSAGE, token_group
from meshui.identity.listing import certificate_listing
from meshui.identity.models import JoinToken
from meshui.identity.schemas import (
    CertificateList,
    JoinTokenCreated,
    JoinTokenIn,
    JoinTokenList,
    JoinTokenOut,
)
from meshui.policy.audit import record
from meshui.policy.models import Action
from meshui.registry.api import iso_timestamp as iso
from proxies.mesh.schema import service_name_problem

logger = logging.getLogger(__name__)
router = Router(tags=["identity"])

MANAGE = "managing join tokens"
PEM = "application/x-pem-file"


def join_token_json(row: JoinToken) -> dict[str, Any]:
    return {"id": row.pk, "service": row.service, "description": row.description,
            "prefix": row.prefix, "created_by": row.created_by_name or None,
            "created_at": iso(row.created_at), "expires_at": iso(row.expires_at),
            "revoked_at": iso(row.revoked_at), "last_used_at": iso(row.last_used_at),
            "state": row.state().value}


def _admin(request: HttpRequest) -> None:
    """Join tokens are the keys to the mesh: even listing them needs the admin role."""
    if not request.user.is_authenticated:
        raise ApiError(ErrorCode.UNAUTHENTICATED, "log in as an admin to manage join tokens")
    if request.method == "GET":  # a refused read is answered, not audited (writes are)
        if not has_role(request.user, Role.ADMIN):
            raise ApiError(ErrorCode.FORBIDDEN, f"{MANAGE} needs the admin role")
        return
    require_role(request, Role.ADMIN, MANAGE)


@router.get("/join-tokens", response={200: JoinTokenList, 401: Error, 403: Error},
            operation_id="listJoinTokens", summary="Every join token, newest first (admin)")
def list_join_tokens(request: HttpRequest) -> Any:
    _admin(request)
    return {"join_tokens": [join_token_json(row) for row in JoinToken.objects.newest_first()]}


@router.post("/join-tokens", response={201: JoinTokenCreated, 400: Error, 401: Error,
                                       403: Error},
             operation_id="createJoinToken",
             summary="A new join token for one service, shown once (admin)")
def create_join_token(request: HttpRequest, body: JoinTokenIn) -> Any:
    _admin(request)
    problem = service_name_problem(body.service)
    if problem is not None:
        raise ApiError(ErrorCode.INVALID_PARAMETER, f"service {problem}", parameter="service")
    with transaction.atomic():
        row, token = JoinToken.issue(body.service, description=body.description,
                                     expires_in_s=body.expires_in_s, created_by=request.user)
        record(request, Action.JOIN_TOKEN_CREATED, detail=(
            f"{row.prefix}... for {row.service!r}, expires {iso(row.expires_at)}"
            + (f": {row.description}" if row.description else "")))
    return Status(201, {**join_token_json(row), "token": token})


def revoke(row: JoinToken) -> bool:
    """Revoke ``row`` (idempotent) and, once that commits, close its connections."""
    if not row.revoke():
        return False
    group = token_group(row.token_hash)
    transaction.on_commit(lambda: broadcast(group, {"type": REVOKED_MESSAGE}))
    return True


@router.delete("/join-tokens/{token_id}", response={200: JoinTokenOut, 401: Error, 403: Error,
                                                   404: Error},
               operation_id="revokeJoinToken",
               summary="Revoke a join token: its sidecars are disconnected now (admin)")
def revoke_join_token(request: HttpRequest, token_id: int) -> Any:
    """Idempotent: revoking a revoked token answers the record and changes nothing."""
    _admin(request)
    with transaction.atomic():
        row = JoinToken.objects.select_for_update().filter(pk=token_id).first()
        if row is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"there is no join token {token_id}")
        if revoke(row):
            record(request, Action.JOIN_TOKEN_REVOKED,
                   detail=f"{row.prefix}... for {row.service!r}")
    return join_token_json(row)


@router.get("/certificates", response={200: CertificateList, 401: Error},
            operation_id="listCertificates",
            summary="Each proxy's latest certificate, and the CA, with expiry warnings")
def list_certificates(request: HttpRequest) -> Any:
    return certificate_listing(current_authority(), timezone.now())


@router.get("/mesh/trust-bundle", auth=None, operation_id="getTrustBundle",
            summary="The roots sidecars trust, as PEM (open without login)",
            openapi_extra={"responses": {200: {
                "description": "the CA's root, then every MESHUI_CA_EXTRA_ROOTS certificate",
                "content": {PEM: {"schema": {"type": "string"}}}}}})
def trust_bundle(request: HttpRequest) -> HttpResponse:
    authority = current_authority()
    response = HttpResponse(authority.roots_pem, content_type=PEM)
    response["X-Meshui-Bundle-Version"] = authority.bundle_version
    return response
