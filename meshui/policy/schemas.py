"""The policy app's JSON in the API (docs/api.md): revisions, diffs, validation, proxies, audit."""

from __future__ import annotations

from typing import Any, Literal

from ninja import Schema
from pydantic import BaseModel, Field

from meshui.registry.schemas import DATE_TIME
from meshui.registry.sync import SyncState

WriteSource = Literal["ui", "api", "cli"]
PolicyDocument = dict[str, Any]


class RevisionOut(Schema):
    revision: int = Field(description="its number; 0 stands for the built-in defaults")
    document: PolicyDocument = Field(description="the whole traffic policy (docs/policy.md)")
    author: str | None
    message: str
    source: str = Field(description="ui, api, cli, rollback or seed (default: no revision yet)")
    created_at: str | None = Field(json_schema_extra=DATE_TIME)
    parent: int | None = Field(description="the revision it was edited from")


class Problem(Schema):
    field: str = Field(description="dotted path at fault, e.g. services.catalog.split.v3")
    detail: str
    line: int | None = Field(None, description="the 1-based line of `field` in the `yaml` "
                                               "text (only when the document came as yaml)")


class Change(Schema):
    field: str
    op: Literal["added", "removed", "changed"]
    old: Any = None
    new: Any = None


class Diff(Schema):
    changes: list[Change]
    unified: str = Field(description="a unified diff of the two documents as YAML")


class RevisionCreated(RevisionOut):
    warnings: list[Problem]


class RevisionPage(Schema):
    count: int
    page: int
    per_page: int
    revisions: list[RevisionOut] = Field(description="newest first")


class _Write(Schema):
    parent: int = Field(ge=0, description="the revision this write is based on (0: none yet)")
    message: str = Field("", max_length=1000)
    source: WriteSource = "api"


YAML_TEXT = Field(None, max_length=256 * 1024,
                  description="the document as YAML text instead of `document` (the YAML "
                              "editor); parsed on the server, no anchors or aliases")


class RevisionIn(_Write):
    document: PolicyDocument | None = Field(None, description="give `document` or `yaml`")
    yaml: str | None = YAML_TEXT


class ServicePatchIn(_Write):
    patch: PolicyDocument = Field(
        description="a JSON merge patch (RFC 7386) of the service's policy; null removes a "
                    "key, a split replaces the split whole")


class ValidateIn(Schema):
    document: PolicyDocument | None = Field(
        None, description="the whole would-be document; or give `yaml`, or `service` and "
                          "`patch`")
    yaml: str | None = YAML_TEXT
    service: str | None = Field(None, description="with `patch`: validate the current "
                                                  "revision with this service merge-patched")
    patch: PolicyDocument | None = Field(None, description="a merge patch of `service`'s "
                                                           "policy, as PATCH takes it")


class ValidateOut(Schema):
    valid: bool
    errors: list[Problem]
    warnings: list[Problem]
    diff: Diff = Field(description="from the current revision to this document")
    revision: int = Field(description="the current revision the diff starts from")
    document: PolicyDocument | None = Field(description="the document validated (null when "
                                                        "the yaml did not parse)")


class PolicyMarks(Schema):
    revision: int
    default: list[str] = Field(description="what every service not named in `services` "
                                           "carries")
    services: dict[str, list[str]] = Field(
        description="per service named in the policy: split, breaker, fault, rate_limit")


class RollbackIn(Schema):
    revision: int = Field(ge=1)
    message: str = Field("", max_length=1000)
    parent: int | None = Field(None, ge=0, description="the revision you saw as current "
                                                       "(checked when given)")


# The proxy list is plain pydantic, not ninja's Schema: at 1000 sidecars ninja's per-field
# Django getter made validating the response 40 ms of the 80 ms per request (a plain model
# takes 4 ms), and the UI polls it while a revision goes out (bench/convergence.py).
class KindSyncOut(BaseModel):
    state: SyncState
    revision_sent: int | None
    revision_acked: int | None
    nack_reason: str | None
    since: str | None = Field(json_schema_extra=DATE_TIME)


class ProxyOut(BaseModel):
    proxy_id: str
    service: str
    version: str
    address: str
    connected: bool
    config: KindSyncOut
    endpoints: KindSyncOut


class ProxySummary(BaseModel):
    revision: int = Field(description="the current policy revision (0: none yet)")
    synced: int = Field(description="connected sidecars that ACKed it")
    total: int = Field(description="connected sidecars")
    pending: int
    stale: int
    nacked: int


class ProxyList(BaseModel):
    summary: ProxySummary
    proxies: list[ProxyOut] = Field(description="by service, then proxy id")


class AuditOut(Schema):
    at: str = Field(json_schema_extra=DATE_TIME)
    last_at: str = Field(json_schema_extra=DATE_TIME)
    count: int = Field(description="refused writes from one address within a minute")
    user: str | None
    action: str
    source: str
    address: str
    method: str
    path: str
    revision: int | None
    detail: str


class AuditPage(Schema):
    count: int
    page: int
    per_page: int
    entries: list[AuditOut] = Field(description="newest first")
