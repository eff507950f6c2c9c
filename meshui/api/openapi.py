"""The OpenAPI 3.1 description of /api/v1/, served at /api/v1/openapi.json.

Hand-written; tests/meshui/test_openapi.py checks that every route is described and that
the documented fields match what the views return.
"""

from __future__ import annotations

from typing import Any

NUMBER_OR_NULL: dict[str, Any] = {"type": ["number", "null"]}
TIMESTAMP_OR_NULL: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}

_STATS: dict[str, Any] = {
    "requests": {"type": "integer", "description": "requests in the window"},
    "errors": {"type": "integer", "description": "of which errors (5xx or failed)"},
    "rps": {"type": "number", "description": "requests / window"},
    "error_rate": {"type": "number", "description": "errors / requests (0 when idle)"},
    "p50_ms": {**NUMBER_OR_NULL, "description": "median latency in ms, null when idle"},
    "p95_ms": NUMBER_OR_NULL,
    "p99_ms": NUMBER_OR_NULL,
}

# Counts of sidecar policy events on an edge (collector.graphstore.EDGE_EVENTS).
_EDGE_EVENTS: dict[str, Any] = {
    "retries": {"type": "integer", "description": "retries sent"},
    "ejections": {"type": "integer", "description": "target instances ejected by outlier detection"},
    "overflows": {
        "type": "integer",
        "description": "requests or retries failed fast by a circuit-breaker limit",
    },
    "timeouts": {"type": "integer", "description": "connect, request, per-try and idle timeouts"},
    "faults": {"type": "integer", "description": "faults injected (delays and aborts)"},
    "rate_limited": {
        "type": "integer",
        "description": "requests answered 429 by a rate limit (caller's or callee's sidecar)",
    },
    "retry_budget_exhausted": {
        "type": "integer",
        "description": "retries refused because the retry budget was spent",
    },
}

_ERROR_RESPONSE = {"$ref": "#/components/responses/Error"}
# Every error code the API answers with (docs/api.md, "Errors").
ERROR_CODES = [
    "invalid_parameter", "unauthenticated", "csrf_failed", "method_not_allowed",
    "data_source_unavailable",
]

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "meshui API",
        "version": "1",
        "description": "The JSON API of the meshui dashboard and control plane. GET endpoints "
        "are open without login when MESHUI_PUBLIC_READ is true; everything else needs a "
        "logged-in session (and a CSRF token).",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"session": []}, {}],
    "paths": {
        "/graph": {
            "get": {
                "operationId": "getGraph",
                "summary": "The live service graph over the last `window` seconds",
                "parameters": [
                    {
                        "name": "window",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 3600, "default": 60},
                        "description": "seconds to add up, ending now",
                    }
                ],
                "responses": {
                    "200": {
                        "description": "the graph",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Graph"}}},
                    },
                    "400": _ERROR_RESPONSE,
                    "401": _ERROR_RESPONSE,
                    "503": {"$ref": "#/components/responses/Unavailable"},
                },
            }
        },
        "/services": {
            "get": {
                "operationId": "listServices",
                "summary": "Registered services with their instances and live versions",
                "responses": {
                    "200": {
                        "description": "services by name",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ServiceList"}}
                        },
                    },
                    "401": _ERROR_RESPONSE,
                },
            }
        },
        "/instances": {
            "get": {
                "operationId": "listInstances",
                "summary": "Every sidecar instance with its connection and sync state",
                "responses": {
                    "200": {
                        "description": "instances by service, then proxy id",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/InstanceList"}}
                        },
                    },
                    "401": _ERROR_RESPONSE,
                    "503": {"$ref": "#/components/responses/Unavailable"},
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "getOpenAPI",
                "summary": "This document",
                "responses": {
                    "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}},
                    "401": _ERROR_RESPONSE,
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
        },
        "responses": {
            "Error": {
                "description": "an error; `error` is a stable code, `detail` says what to fix",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "Unavailable": {
                "description": "`data_source_unavailable`: Redis, which holds the live graph, "
                "cannot be reached; transient, retry after `Retry-After` seconds",
                "headers": {"Retry-After": {"schema": {"type": "integer"},
                                            "description": "seconds to wait before retrying"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "detail"],
                "properties": {
                    "error": {
                        "type": "string",
                        "enum": ERROR_CODES,
                    },
                    "detail": {"type": "string"},
                    "parameter": {"type": "string", "description": "the offending parameter"},
                },
            },
            "Node": {
                "type": "object",
                "required": ["id", "service", "versions", *_STATS],
                "properties": {
                    "id": {"type": "string"},
                    "service": {"type": "string"},
                    "versions": {"type": "array", "items": {"type": "string"}},
                    **_STATS,
                },
                "description": "a service; stats are the requests it served",
            },
            "Edge": {
                "type": "object",
                "required": ["source", "target", *_STATS, "events"],
                "properties": {
                    "source": {"type": "string"},
                    "target": {"type": "string"},
                    **_STATS,
                    "events": {"$ref": "#/components/schemas/EdgeEvents"},
                },
                "description": "calls from source to target as the caller saw them",
            },
            "EdgeEvents": {
                "type": "object",
                "required": list(_EDGE_EVENTS),
                "properties": _EDGE_EVENTS,
                "additionalProperties": False,
                "description": "what the sidecars' traffic policy did to calls on the edge in "
                "the window (every key always present, 0 when nothing happened)",
            },
            "Graph": {
                "type": "object",
                "required": ["window", "generated_at", "nodes", "edges", "hidden"],
                "properties": {
                    "window": {"type": "integer"},
                    "generated_at": {"type": "number", "description": "epoch seconds"},
                    "nodes": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
                    "edges": {"type": "array", "items": {"$ref": "#/components/schemas/Edge"}},
                    "hidden": {"$ref": "#/components/schemas/Hidden"},
                },
            },
            "Hidden": {
                "type": "object",
                "required": ["nodes", "edges"],
                "properties": {
                    "nodes": {"type": "integer", "minimum": 0,
                              "description": "services left out (beyond MESHUI_GRAPH_MAX_NODES, "
                              "the least busy first)"},
                    "edges": {"type": "integer", "minimum": 0,
                              "description": "edges left out because an end was left out"},
                },
                "additionalProperties": False,
                "description": "what the graph does not show; zeros when it shows everything",
            },
            "ServiceInstance": {
                "type": "object",
                "required": ["proxy_id", "version", "address", "connected", "live"],
                "properties": {
                    "proxy_id": {"type": "string"},
                    "version": {"type": "string"},
                    "address": {"type": "string"},
                    "connected": {"type": "boolean"},
                    "live": {"type": "boolean", "description": "connected and heartbeat within 3 intervals"},
                },
            },
            "Service": {
                "type": "object",
                "required": ["name", "created_at", "versions", "live_instances", "instances"],
                "properties": {
                    "name": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "versions": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "versions of the live instances",
                    },
                    "live_instances": {"type": "integer"},
                    "instances": {"type": "array", "items": {"$ref": "#/components/schemas/ServiceInstance"}},
                },
            },
            "ServiceList": {
                "type": "object",
                "required": ["services"],
                "properties": {
                    "services": {"type": "array", "items": {"$ref": "#/components/schemas/Service"}}
                },
            },
            "Instance": {
                "type": "object",
                "required": [
                    "proxy_id",
                    "service",
                    "version",
                    "address",
                    "admin_address",
                    "pid",
                    "connected",
                    "connected_at",
                    "last_seen",
                    "endpoints_acked",
                    "sync",
                    "last_nack_reason",
                ],
                "properties": {
                    "proxy_id": {"type": "string"},
                    "service": {"type": "string"},
                    "version": {"type": "string"},
                    "address": {"type": "string"},
                    "admin_address": {"type": "string"},
                    "pid": {"type": ["integer", "null"]},
                    "connected": {"type": "boolean"},
                    "connected_at": TIMESTAMP_OR_NULL,
                    "last_seen": TIMESTAMP_OR_NULL,
                    "endpoints_acked": {"type": ["integer", "null"]},
                    "sync": {"type": "string", "enum": ["SYNCED", "STALE", "NACKED"]},
                    "last_nack_reason": {"type": ["string", "null"]},
                },
            },
            "InstanceList": {
                "type": "object",
                "required": ["endpoints_version", "instances"],
                "properties": {
                    "endpoints_version": {
                        "type": ["integer", "null"],
                        "description": "the latest endpoints version sent",
                    },
                    "endpoints_status": {
                        "type": ["object", "null"],
                        "description": "the last endpoints publish: state ok or too_large, "
                                       "version, bytes, limit, services, instances, skipped, "
                                       "reason, at (docs/control-channel.md)",
                    },
                    "instances": {"type": "array", "items": {"$ref": "#/components/schemas/Instance"}},
                },
            },
        },
    },
}
