"""Helpers shared by the OTLP trace and metric decoders (protobuf and OTLP/JSON).

OTLP/JSON is read straight from the dict orjson returns: ids are hex, int64 values may be
strings, enums are ints (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding).
protobuf's json_format is never used: it expects base64 ids and silently mangles hex ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from collector import validation
from collector.errors import InvalidRequest
from collector.records import UNKNOWN_SERVICE, Rejections
from collector.validation import MAX_NAME_LENGTH


def json_value(value: Any) -> Any:
    """The Python value of an OTLP/JSON AnyValue (``{"stringValue": "x"}`` -> ``"x"``).

    Arrays, maps and bytes -> None (the graph reads scalars only); a malformed ``intValue``
    raises ``Rejected``.
    """
    if not isinstance(value, dict):
        return None
    for kind, inner in value.items():
        if kind == "stringValue" or kind == "boolValue" or kind == "doubleValue":
            return inner
        if kind == "intValue":
            return validation.json_int(inner, "intValue", -(2**63), 2**63 - 1)
    return None


def pb_value(value: Any) -> Any:
    """The Python value of a protobuf AnyValue (scalars only; arrays and maps -> None)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        return value.double_value
    return None


def is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class Resource:
    """The resource attributes the graph needs, and why its items are rejected (if they are).

    ``problem`` is set when ``service.name`` or ``service.version`` cannot be stored (too
    long, control characters): every span or data point of that resource is then rejected.
    """

    __slots__ = ("service", "version", "instance", "sidecar", "problem")

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.problem = ""
        service = attributes.get("service.name")
        self.service = service if isinstance(service, str) and service else UNKNOWN_SERVICE
        version = attributes.get("service.version")
        self.version = version if isinstance(version, str) else ""
        instance = attributes.get("service.instance.id")
        # Only a breakdown (the per-instance series): one that could not be a series' name
        # leaves its spans and points counted for the service, under no instance.
        self.instance = ""
        if isinstance(instance, str) and len(instance) <= MAX_NAME_LENGTH and instance.isprintable():
            self.instance = instance
        self.sidecar = is_true(attributes.get("meshui.sidecar"))
        try:
            validation.name(self.service, "resource service.name")
            validation.name(self.version, "resource service.version", required=False)
        except validation.Rejected as exc:
            self.problem = str(exc)


def pb_attributes(attributes: Any) -> dict[str, Any]:
    return {kv.key: pb_value(kv.value) for kv in attributes}


def json_attributes(attributes: Any, where: str) -> dict[str, Any]:
    if attributes is None:
        return {}
    if not isinstance(attributes, list):
        raise InvalidRequest(f"{where}.attributes must be an array")
    result: dict[str, Any] = {}
    for kv in attributes:
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise InvalidRequest(f"{where}.attributes holds an entry without a string key")
        try:
            result[kv["key"]] = json_value(kv.get("value"))
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidRequest(f"{where}.attributes[{kv['key']!r}]: {exc}") from None
    return result


def json_list(container: dict[str, Any], key: str, where: str) -> list[Any]:
    """A repeated field of an OTLP/JSON message (absent -> empty), checked to be an array."""
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"{where}.{key} must be an array")
    return value


def json_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must be an object")
    return value


def json_resources(body: bytes, message: str, key: str) -> Iterator[tuple[str, dict[str, Any], Resource]]:
    """Parse an OTLP/JSON export and walk its resource entries.

    Yields, per entry of ``key`` (``resourceSpans``/``resourceMetrics``), where it is in the
    document (for error messages), the entry itself and its ``Resource``. Malformed JSON or
    shapes raise ``InvalidRequest`` naming the place; a malformed resource yields a
    ``Resource`` whose ``problem`` says why its items are rejected.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from None
    document = json_object(document, message)
    for index, entry in enumerate(json_list(document, key, "request")):
        where = f"{key}[{index}]"
        entry = json_object(entry, where)
        try:
            resource_doc = json_object(entry.get("resource") or {}, f"{where}.resource")
            resource = Resource(json_attributes(resource_doc.get("attributes"), f"{where}.resource"))
        except InvalidRequest as exc:
            # Only this resource's items are unusable: they are rejected, the rest is kept.
            resource = Resource({})
            resource.problem = str(exc)
        yield where, entry, resource


def encode_export_response(rejected: Rejections, json: bool, response: Any, count_field: str) -> bytes:
    """An Export*ServiceResponse in the request's encoding, with partial success if any rejected.

    ``response`` is an empty response message of the signal; ``count_field`` its rejected-count
    field (``rejected_spans``, ``rejected_data_points``). JSON spells it in camelCase and int64
    as a string, as OTLP/JSON does.
    """
    if json:
        if not rejected.count:
            return b"{}"
        head, *rest = count_field.split("_")
        json_field = head + "".join(word.title() for word in rest)
        return orjson.dumps(
            {"partialSuccess": {json_field: str(rejected.count), "errorMessage": rejected.message}}
        )
    if rejected.count:
        setattr(response.partial_success, count_field, rejected.count)
        response.partial_success.error_message = rejected.message
    return bytes(response.SerializeToString())
