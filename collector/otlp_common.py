"""Helpers shared by the OTLP trace and metric decoders (protobuf and OTLP/JSON).

OTLP/JSON is read straight from the dict orjson returns: ids are hex, int64 values may be
strings, enums are ints (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding).
protobuf's json_format is never used: it expects base64 ids and silently mangles hex ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from collector.errors import InvalidRequest
from collector.records import UNKNOWN_SERVICE, Rejections


def json_value(value: Any) -> Any:
    """The Python value of an OTLP/JSON AnyValue (``{"stringValue": "x"}`` -> ``"x"``)."""
    if not isinstance(value, dict):
        return None
    for kind, inner in value.items():
        if kind == "stringValue" or kind == "boolValue" or kind == "doubleValue":
            return inner
        if kind == "intValue":
            return int(inner)
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


def as_int(value: Any, default: int = 0) -> int:
    """An int from an attribute that should be one (some SDKs send ``"500"``)."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return default


def is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class Resource:
    """The resource attributes the graph needs."""

    __slots__ = ("service", "version", "instance", "sidecar")

    def __init__(self, attributes: dict[str, Any]) -> None:
        service = attributes.get("service.name")
        self.service = service if isinstance(service, str) and service else UNKNOWN_SERVICE
        version = attributes.get("service.version")
        self.version = version if isinstance(version, str) else ""
        instance = attributes.get("service.instance.id")
        self.instance = instance if isinstance(instance, str) else ""
        self.sidecar = is_true(attributes.get("meshui.sidecar"))


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
        except (TypeError, ValueError) as exc:
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


def json_int(value: Any) -> int:
    """An OTLP/JSON int64/uint64 (a string or a number)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        return int(value)
    return int(value)


def json_resources(body: bytes, message: str, key: str) -> Iterator[tuple[str, dict[str, Any], Resource]]:
    """Parse an OTLP/JSON export and walk its resource entries.

    Yields, per entry of ``key`` (``resourceSpans``/``resourceMetrics``), where it is in the
    document (for error messages), the entry itself and its ``Resource``. Malformed JSON or
    shapes raise ``InvalidRequest`` naming the place.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from None
    document = json_object(document, message)
    for index, entry in enumerate(json_list(document, key, "request")):
        where = f"{key}[{index}]"
        entry = json_object(entry, where)
        resource_doc = json_object(entry.get("resource") or {}, f"{where}.resource")
        yield where, entry, Resource(json_attributes(resource_doc.get("attributes"), f"{where}.resource"))


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
