"""The dashboard's endpoints of /api/v1/ (docs/api.md): the live service graph, heatmaps, traces."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from django.http import HttpRequest
from ninja import Query, Router
from pydantic import BeforeValidator, Field

from collector.tracesearch import DEFAULT_LIMIT, MAX_LIMIT, QueryProblem, trace_id_problem
from collector.validation import Rejected
from collector.validation import name as stored_name
from meshui.api.errors import RETRY_AFTER_DOC, ApiError, Error, ErrorCode, data_source_unavailable
from meshui.dashboard.instance_graph import aread_instance_graph
from meshui.dashboard.schemas import Graph, Heatmap, Series, Trace, TraceList
from meshui.dashboard.source import (
    DEFAULT_STEP,
    DEFAULT_WINDOW,
    MAX_STEP,
    MAX_WINDOW,
    METRICS,
    Scope,
    TraceQuery,
    afind_traces,
    aread_graph,
    aread_heatmap,
    aread_series,
    aread_trace,
    edge_series,
    service_series,
    validate_metrics,
    validate_step,
    validate_window,
)
from meshui.redis_clients import DATA_SOURCE_ERRORS
from proxies.mesh.schema import proxy_id_problem, service_name_problem, version_problem

router = Router(tags=["graph"])


def parse_window(raw: object) -> object:
    """The ``window`` query parameter: an integer from 1 to MAX_WINDOW seconds (DEFAULT_WINDOW).

    Read as ``int()`` reads it (" 60" and "+60" are 60), so the API takes what it took
    before it had a schema; the ValueError's text is the 400's ``detail``.
    """
    if raw is None or raw == "":
        return DEFAULT_WINDOW
    if isinstance(raw, str):
        try:
            raw = int(raw)
        except ValueError:
            raise ValueError(f"window must be an integer number of seconds, got {raw!r}") from None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return validate_window(raw)
    return raw  # anything else: pydantic's own int check refuses it


# The bounds are for the schema; parse_window has already checked them.
Window = Annotated[int, Field(ge=1, le=MAX_WINDOW), BeforeValidator(parse_window),
                   Query(DEFAULT_WINDOW, description="seconds to add up, ending now")]


@router.get(
    "/graph", response={200: Graph, 400: Error, 401: Error, 503: Error},
    operation_id="getGraph", summary="The live service graph over the last `window` seconds",
    openapi_extra=RETRY_AFTER_DOC, exclude_unset=True)
async def graph(request: HttpRequest, window: Window,
                level: Literal["service", "instance"] = Query(
                    "service", description="instance: each node also lists its instances, "
                                           "with their live load-balancing state")) -> Any:
    """Nodes are services with the requests they served, edges the calls between them as the
    caller saw them; at most MESHUI_GRAPH_MAX_NODES services, the busiest, the rest counted in
    ``hidden``."""
    try:
        if level == "instance":
            return await aread_instance_graph(window)
        return await aread_graph(window)
    except DATA_SOURCE_ERRORS as exc:
        raise data_source_unavailable(request, exc) from exc


def heatmap_series(source: str | None, target: str | None, service: str | None,
                   version: str | None, instance: str | None) -> str:
    """Which series the query names, or ValueError saying what to ask instead."""
    for name, value, problem in (("source", source, service_name_problem),
                                 ("target", target, service_name_problem),
                                 ("service", service, service_name_problem),
                                 ("version", version, version_problem),
                                 ("instance", instance, proxy_id_problem)):
        if value and problem(value) is not None:
            raise ValueError(f"{name} {problem(value)}")
    if service and (source or target):
        raise ValueError("give either source and target (an edge) or service, not both")
    if service:
        if version and instance:
            raise ValueError("give version or instance, not both (an instance runs one version)")
        return service_series(service, version or None, instance or None)
    if not (source and target):
        raise ValueError("give source and target (an edge), or service (what it served)")
    if instance:
        raise ValueError("an edge's heatmap per instance of its target is not recorded; ask "
                         "for what the instance served: service and instance")
    return edge_series(source, target, version or None)


@router.get(
    "/heatmap", response={200: Heatmap, 400: Error, 401: Error, 503: Error},
    operation_id="getHeatmap",
    summary="A latency heatmap of one edge or service: buckets over time",
    openapi_extra=RETRY_AFTER_DOC)
async def heatmap(request: HttpRequest, window: Window, source: str | None = None,
                  target: str | None = None, service: str | None = None,
                  version: str | None = None, instance: str | None = None,
                  step: int = Query(DEFAULT_STEP, ge=1, le=MAX_STEP,
                                    description="seconds per column")) -> Any:
    """Columns of ``step`` seconds (aligned to epoch multiples of it) over the last
    ``window`` seconds; rows are latency buckets, each a factor of sqrt(2). The counts over
    the window add up to the graph's requests for the same edge or service."""
    try:
        series = heatmap_series(source, target, service, version, instance)
        validate_step(step, window)
    except ValueError as exc:
        raise ApiError(ErrorCode.INVALID_PARAMETER, str(exc)) from None
    try:
        return await aread_heatmap(series, window, step)
    except DATA_SOURCE_ERRORS as exc:
        raise data_source_unavailable(request, exc) from exc


def default_step(window: int) -> int:
    """About 60 points a chart: 5 min at 5 s, 15 min at 15 s, 1 h at 60 s."""
    return min(MAX_STEP, max(1, -(-window // 60)))


async def instance_service(instance: str) -> str:
    """The service an instance (proxy id) registered as, or ValueError."""
    from meshui.registry.models import Instance  # the registry's, read-only here

    found = await Instance.objects.select_related("service").filter(proxy_id=instance).afirst()
    if found is None:
        raise ValueError(f"no instance {instance!r} is registered; give service and instance "
                         "to chart one that has gone")
    return found.service.name


@router.get(
    "/series", response={200: Series, 400: Error, 401: Error, 503: Error},
    operation_id="getSeries",
    summary="Golden metrics over time: rates, success, latency quantiles, policy events",
    openapi_extra=RETRY_AFTER_DOC)
async def series(request: HttpRequest, window: Window,
                 metric: str | None = Query(
                     None, description="comma-separated; absent: the golden ones. Known: "
                                       + ", ".join(METRICS)),
                 source: str | None = None, target: str | None = None,
                 service: str | None = None, version: str | None = None,
                 instance: str | None = None,
                 step: int | None = Query(None, ge=1, le=MAX_STEP,
                                          description="seconds per point; default window/60")
                 ) -> Any:
    """One edge (``source`` and ``target``, maybe ``version``), service (``service``, maybe
    ``version``) or instance (``instance``, maybe with its ``service``). Effective rates are
    what the caller saw, actual ones every try (retries included)."""
    try:
        metrics = validate_metrics(metric)
        if instance and not service and not (source or target):
            if proxy_id_problem(instance) is not None:
                raise ValueError(f"instance {proxy_id_problem(instance)}")
            service = await instance_service(instance)
        heatmap_series(source, target, service, version, instance)  # the same checks
        if service:
            scope = Scope.service(service, version or None, instance or None)
        else:
            scope = Scope.edge(source or "", target or "", version or None)
        step = default_step(window) if step is None else step
        validate_step(step, window)
    except ValueError as exc:
        raise ApiError(ErrorCode.INVALID_PARAMETER, str(exc)) from None
    try:
        return await aread_series(scope, window, step, metrics)
    except DATA_SOURCE_ERRORS as exc:
        raise data_source_unavailable(request, exc) from exc


def trace_query(**given: Any) -> TraceQuery:
    """The search's parameters, checked; ``QueryProblem`` names the one at fault.

    Names are checked the way the collector checks what it stores (1..255 printable
    characters), not as mesh service names: traces also come from SDK apps named freely.
    """
    for name in ("service", "source", "target"):
        value = given.get(name)
        if value:
            try:
                stored_name(value, name)
            except Rejected as exc:
                raise QueryProblem(name, str(exc)) from None
    if given.get("operation") is not None and not given["operation"]:
        raise QueryProblem("operation", "operation must not be empty")
    query = TraceQuery(**{key: value for key, value in given.items() if value is not None})
    query.validate()
    return query


@router.get(
    "/traces", response={200: TraceList, 400: Error, 401: Error, 503: Error},
    operation_id="searchTraces", tags=["traces"],
    summary="Search the stored traces: by service, edge, operation, status, duration and time",
    openapi_extra=RETRY_AFTER_DOC)
async def traces(
    request: HttpRequest,
    service: str | None = Query(None, description="a service with a span in the trace"),
    source: str | None = Query(None, description="with target: a call on the edge source -> target"),
    target: str | None = None,
    operation: str | None = Query(None, description="`<method> <http.route>` (else the span name) "
                                                    "of a SERVER or root span"),
    trace_id: str | None = Query(None, description="32 lower-case hex digits"),
    min_ms: float | None = Query(None, description="duration (the root span's, else the longest) "
                                                   "at least this many ms"),
    max_ms: float | None = Query(None, description="duration at most this many ms"),
    status: str | None = Query(None, description="`error` (a span failed) or `ok` (none did)"),
    start: float | None = Query(None, description="epoch seconds; default: an hour before end"),
    end: float | None = Query(None, description="epoch seconds; default: now"),
    limit: int = Query(DEFAULT_LIMIT, description=f"at most this many traces (1..{MAX_LIMIT})"),
) -> Any:
    """Newest first (by start). The search reads one index within the time range and stops
    after `limit` matches or its cap of candidates (`truncated`); to page back, ask again
    with `end` set to the start of the last trace listed."""
    try:
        query = trace_query(service=service, source=source, target=target, operation=operation,
                            trace_id=trace_id, min_ms=min_ms, max_ms=max_ms, status=status,
                            start=start, end=end, limit=limit)
    except QueryProblem as exc:
        raise ApiError(ErrorCode.INVALID_PARAMETER, str(exc), parameter=exc.parameter) from None
    try:
        return await afind_traces(query)
    except DATA_SOURCE_ERRORS as exc:
        raise data_source_unavailable(request, exc) from exc


@router.get(
    "/traces/{trace_id}", response={200: Trace, 400: Error, 401: Error, 404: Error, 503: Error},
    operation_id="getTrace", tags=["traces"],
    summary="One stored trace with every span: service, name, kind, times, status, attributes, "
            "events, parent",
    openapi_extra=RETRY_AFTER_DOC)
async def trace(request: HttpRequest, trace_id: str) -> Any:
    """The spans come parents first, siblings by start, each with its `depth`."""
    problem = trace_id_problem(trace_id)
    if problem:
        raise ApiError(ErrorCode.INVALID_PARAMETER, problem, parameter="trace_id")
    try:
        found = await aread_trace(trace_id)
    except DATA_SOURCE_ERRORS as exc:
        raise data_source_unavailable(request, exc) from exc
    if found is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"no trace {trace_id} is stored: it was never "
                                            "received, or it expired or was evicted")
    return found
