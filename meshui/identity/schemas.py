"""Response and request shapes of the identity endpoints (docs/api.md, "Identity")."""

from __future__ import annotations

from typing import Literal

from ninja import Schema
from pydantic import Field

from meshui.identity.models import DESCRIPTION_MAX
from meshui.registry.schemas import DATE_TIME

DAY = 86400
EXPIRES_MIN_S = 60
EXPIRES_MAX_S = 365 * DAY


class JoinTokenOut(Schema):
    id: int
    service: str = Field(description="the only service a sidecar may join as with it")
    description: str
    prefix: str = Field(description="the token's first 12 characters, to tell tokens apart")
    created_by: str | None = Field(description="the user (or manage.py) who created it")
    created_at: str = Field(json_schema_extra=DATE_TIME)
    expires_at: str = Field(json_schema_extra=DATE_TIME)
    revoked_at: str | None = Field(json_schema_extra=DATE_TIME)
    last_used_at: str | None = Field(json_schema_extra=DATE_TIME,
                                     description="the last handshake with it (to the minute)")
    state: Literal["active", "expired", "revoked"]


class JoinTokenCreated(JoinTokenOut):
    token: str = Field(description="the token itself (mjt_...): shown this once, never again")


class JoinTokenList(Schema):
    join_tokens: list[JoinTokenOut] = Field(description="newest first")


class JoinTokenIn(Schema):
    service: str = Field(description="a service name (a lower-case DNS label)")
    description: str = Field("", max_length=DESCRIPTION_MAX)
    expires_in_s: int | None = Field(
        None, ge=EXPIRES_MIN_S, le=EXPIRES_MAX_S,
        description="seconds until it expires (default MESHUI_JOIN_TOKEN_TTL_S, 30 days)")


class ProxyCertificate(Schema):
    proxy_id: str
    service: str
    spiffe_id: str
    serial: str = Field(description="lower-case hex")
    not_before: str = Field(json_schema_extra=DATE_TIME)
    not_after: str = Field(json_schema_extra=DATE_TIME)
    issued_at: str = Field(json_schema_extra=DATE_TIME)
    last_rotation: str | None = Field(json_schema_extra=DATE_TIME, description=(
        "when the latest certificate replaced an earlier one (null: only one was issued)"))
    renewals: int = Field(description="certificates issued to this proxy, the first included")
    connected: bool = Field(description="its control connection is live now")
    warnings: list[str]


class CaSummary(Schema):
    subject: str
    serial: str = Field(description="lower-case hex")
    not_after: str = Field(json_schema_extra=DATE_TIME)
    source: Literal["generated", "operator"] = Field(
        description="a root meshui generated, or the operator's CA (MESHUI_CA_CERT)")
    trust_domain: str
    bundle_version: str = Field(description="the trust_bundle frame's version")
    warnings: list[str]


class CertificateList(Schema):
    ca: CaSummary
    certificates: list[ProxyCertificate] = Field(description="by service, then proxy id")
