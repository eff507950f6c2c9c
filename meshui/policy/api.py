"""The policy app's endpoints of /api/v1/ (docs/api.md): revisions, proxies' sync, audit."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema
from ninja.responses import Status
from pydantic import Field

from meshui.accounts.roles import Role
from meshui.api.auth import require_role
from meshui.api.errors import ApiError, Error, ErrorCode
from meshui.policy import diff, effective, merge, revisions, yaml_text
from meshui.policy.audit import entry_json
from meshui.policy.models import Action, AuditEntry, Revision, Source
from meshui.policy.revisions import InvalidPolicy, StaleParent
from meshui.policy.schemas import (
    AuditPage,
    Diff,
    PolicyMarks,
    ProxyList,
    RevisionCreated,
    RevisionIn,
    RevisionOut,
    RevisionPage,
    RollbackIn,
    ServicePatchIn,
    ValidateIn,
    ValidateOut,
)
from meshui.policy.status import proxy_status
from meshui.policy.validation import Problem, Validation
from meshui.registry.api import iso_timestamp as iso
from proxies.mesh.schema import service_name_problem

router = Router(tags=["policy"])

READ = {401: Error}
WRITE = {400: Error, 401: Error, 403: Error, 409: Error}
EDIT = "editing the traffic policy"


def revision_json(revision: Revision | None) -> dict[str, Any]:
    if revision is None:  # before the first revision every default is in force
        return {"revision": 0, "document": {}, "author": None, "message": "", "source": "default",
                "created_at": None, "parent": None}
    return {"revision": revision.number, "document": revision.document,
            "author": revision.author_name or None, "message": revision.message,
            "source": revision.source, "created_at": iso(revision.created_at),
            "parent": revision.parent}


def problems_json(problems: tuple[Problem, ...], text: str | None) -> list[dict[str, Any]]:
    """Problems as the API writes them; with the line of each field when the document came
    as YAML text (the YAML editor marks that line)."""
    if text is None:
        return [p.as_json() for p in problems]
    return [{**p.as_json(), "line": yaml_text.line_of(text, p.field)} for p in problems]


def invalid(validation: Validation, text: str | None = None) -> ApiError:
    first = validation.errors[0]
    errors = problems_json(validation.errors, text)
    return ApiError(ErrorCode.INVALID_POLICY, f"{first.field}: {first.detail}", field=first.field,
                    **({"line": errors[0]["line"]} if text is not None else {}),
                    errors=errors, warnings=problems_json(validation.warnings, text))


def unparsable(problem: yaml_text.YamlProblem) -> dict[str, Any]:
    return {"field": "yaml", "detail": str(problem), "line": problem.line}


def document_of(document: dict[str, Any] | None, text: str | None) -> dict[str, Any]:
    """The document a write gives as JSON (``document``) or as YAML text (``yaml``)."""
    if (document is None) == (text is None):
        raise ApiError(ErrorCode.INVALID_PARAMETER, "give the policy as either document "
                       "(JSON) or yaml (text), not both or neither", parameter="document")
    if text is None:
        return document or {}
    try:
        return yaml_text.load(text)
    except yaml_text.YamlProblem as exc:
        raise ApiError(ErrorCode.INVALID_POLICY, f"yaml: {exc}", field="yaml", line=exc.line,
                       errors=[unparsable(exc)], warnings=[]) from None


def stale(exc: StaleParent) -> ApiError:
    return ApiError(ErrorCode.STALE_PARENT, str(exc), current=revision_json(exc.current))


def written(request: HttpRequest, document: dict[str, Any], parent: int, message: str,
            source: Source, action: Action = Action.REVISION,
            text: str | None = None) -> Status[dict[str, Any]]:
    try:
        result = revisions.write(request, document, parent=parent, message=message,
                                 source=source, action=action)
    except InvalidPolicy as exc:
        raise invalid(exc.validation, text) from None
    except StaleParent as exc:
        raise stale(exc) from None
    return Status(201, {**revision_json(result.revision),
                        "warnings": [w.as_json() for w in result.warnings]})


def found(number: int) -> Revision:
    revision = revisions.revision_or_none(number)
    if revision is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"there is no revision {number}")
    return revision


class Paging(Schema):
    page: int = Field(1, ge=1)
    per_page: int = Field(20, ge=1, le=100)


def _page(queryset: Any, paging: Paging) -> tuple[int, list[Any]]:
    start = (paging.page - 1) * paging.per_page
    return queryset.count(), list(queryset[start:start + paging.per_page])


@router.get("/policy", response={200: RevisionOut, **READ}, operation_id="getPolicy",
            summary="The current policy revision (the newest)")
def current_policy(request: HttpRequest) -> Any:
    """Revision 0 with an empty document stands for the built-in defaults (no revision yet)."""
    return revision_json(Revision.objects.current())


@router.get("/policy/revisions", response={200: RevisionPage, **READ},
            operation_id="listRevisions", summary="Every revision, newest first, a page at a time")
def list_revisions(request: HttpRequest, paging: Query[Paging]) -> Any:
    count, rows = _page(Revision.objects.newest_first(), paging)
    return {"count": count, "page": paging.page, "per_page": paging.per_page,
            "revisions": [revision_json(r) for r in rows]}


@router.post("/policy/revisions", response={201: RevisionCreated, **WRITE},
             operation_id="createRevision", summary="Write a whole new policy document")
def create_revision(request: HttpRequest, body: RevisionIn) -> Any:
    """400 ``invalid_policy`` names the field at fault (and its ``line`` when the document
    came as ``yaml``) and creates nothing; 409 ``stale_parent`` when ``parent`` is not the
    current revision (with the current one)."""
    require_role(request, Role.OPERATOR, EDIT)
    document = document_of(body.document, body.yaml)
    return written(request, document, body.parent, body.message, Source(body.source),
                   text=body.yaml)


@router.get("/policy/revisions/{number}", response={200: RevisionOut, 404: Error, **READ},
            operation_id="getRevision", summary="One revision")
def get_revision(request: HttpRequest, number: int) -> Any:
    return revision_json(found(number))


@router.get("/policy/revisions/{number}/diff", response={200: Diff, 404: Error, **READ},
            operation_id="diffRevision",
            summary="What changed from revision `against` (default: its parent) to this one")
def diff_revision(request: HttpRequest, number: int,
                  against: int | None = Query(None, ge=0)) -> Any:  # noqa: B008
    new = found(number)
    base = new.parent if against is None else against
    old = found(base) if base else None
    return revisions.between(old, new)


@router.patch("/policy/services/{service}", response={201: RevisionCreated, **WRITE},
              operation_id="patchServicePolicy",
              summary="A new revision with one service's policy merge-patched")
def patch_service(request: HttpRequest, service: str, body: ServicePatchIn) -> Any:
    """What the sliders and ``meshctl split`` send: only ``services.<service>`` changes."""
    require_role(request, Role.OPERATOR, EDIT)
    problem = service_name_problem(service)
    if problem is not None:
        raise ApiError(ErrorCode.INVALID_PARAMETER, f"service: {problem}", parameter="service")
    number, document = revisions.current_document()
    if number != body.parent:
        raise stale(StaleParent(body.parent, Revision.objects.current()))
    patched = merge.patch_service(document, service, body.patch)
    return written(request, patched, body.parent, body.message, Source(body.source))


def _proposed(body: ValidateIn, current: dict[str, Any]) -> dict[str, Any]:
    """The would-be document: given whole, as YAML, or as one service's patch of ``current``."""
    if body.service is None and body.patch is None:
        return document_of(body.document, body.yaml)
    if body.service is None or body.patch is None or body.document is not None or body.yaml:
        raise ApiError(ErrorCode.INVALID_PARAMETER, "a patch needs service and patch, and "
                       "neither document nor yaml", parameter="patch")
    problem = service_name_problem(body.service)
    if problem is not None:
        raise ApiError(ErrorCode.INVALID_PARAMETER, f"service: {problem}", parameter="service")
    return merge.patch_service(current, body.service, body.patch)


@router.post("/policy/validate", response={200: ValidateOut, **READ, 400: Error},
             operation_id="validatePolicy",
             summary="Dry run: would this document be accepted, and what would change")
def validate_policy(request: HttpRequest, body: ValidateIn) -> Any:
    """Writes nothing, so any reader may ask (a POST only because the document is a body).

    YAML that does not parse is ``valid: false`` with one error on field ``yaml`` (and its
    line), so an editor can validate as the user types."""
    number, old = revisions.current_document()
    try:
        document = _proposed(body, old)
    except ApiError as exc:
        if exc.error != ErrorCode.INVALID_POLICY:
            raise
        return {"valid": False, "errors": exc.extra["errors"], "warnings": [],
                "diff": {"changes": [], "unified": ""}, "revision": number, "document": None}
    validation = revisions.check(document)
    return {"valid": validation.valid, "errors": problems_json(validation.errors, body.yaml),
            "warnings": problems_json(validation.warnings, body.yaml),
            "diff": diff.report(old, document, revisions.label(number), "proposed"),
            "revision": number, "document": document}


@router.get("/policy/marks", response={200: PolicyMarks, **READ}, operation_id="policyMarks",
            summary="Which services carry a split, a breaker, a fault or a rate limit")
def policy_marks(request: HttpRequest) -> Any:
    """What the graph marks services with: per service named in the current revision, the
    kinds of policy that differ from the defaults (``default`` for every other service)."""
    number, document = revisions.current_document()
    return effective.policy_marks(number, document)


@router.post("/policy/rollback", response={201: RevisionCreated, 404: Error, **WRITE},
             operation_id="rollbackPolicy",
             summary="A new revision whose document is an earlier revision's")
def rollback(request: HttpRequest, body: RollbackIn) -> Any:
    require_role(request, Role.OPERATOR, EDIT)
    target = found(body.revision)
    parent = revisions.current_document()[0] if body.parent is None else body.parent
    message = body.message or f"roll back to revision {target.number}"
    return written(request, target.document, parent, message, Source.ROLLBACK, Action.ROLLBACK)


@router.get("/proxies", response={200: ProxyList, **READ, 503: Error}, operation_id="listProxies",
            summary="Every sidecar's sync state for the policy and the endpoints")
def proxies(request: HttpRequest) -> Any:
    """Per sidecar and kind: SYNCED, PENDING (sent, ACK not in yet), STALE (not ACKed within
    MESHUI_SYNC_TIMEOUT), NACKED (with the sidecar's reason) or NOT_SENT."""
    return proxy_status()


@router.get("/audit", response={200: AuditPage, **READ}, operation_id="listAudit",
            summary="The audit log: every write and refused write, newest first")
def audit_log(request: HttpRequest, paging: Query[Paging]) -> Any:
    count, rows = _page(AuditEntry.objects.newest_first(), paging)
    return {"count": count, "page": paging.page, "per_page": paging.per_page,
            "entries": [entry_json(e) for e in rows]}
