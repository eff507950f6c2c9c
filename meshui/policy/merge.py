"""JSON merge patch (RFC 7386) of one service's policy, as the sliders and ``meshctl split`` send.

Pure. An object merges key by key; ``null`` removes the key (so the default, or the
``default`` section, applies again); anything else replaces. One exception, the policy's
own rule (docs/policy.md, "Merging"): a ``split`` is one decision, so a patch's ``split``
replaces the whole split rather than merging version by version; ``{"split": {"v1": 50,
"v2": 50}}`` over ``{v1: 80, v2: 10, v3: 10}`` leaves no v3.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

REPLACED = frozenset({"split"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 section 2, with ``split`` replaced whole. Returns a new value."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif key in REPLACED:
            merged[key] = copy.deepcopy(value)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def patch_service(document: Mapping[str, Any], service: str, patch: Mapping[str, Any]
                  ) -> dict[str, Any]:
    """``document`` with ``services.<service>`` merge-patched; an emptied service is dropped."""
    result = copy.deepcopy(dict(document))
    services = dict(result.get("services") or {})
    merged = merge_patch(services.get(service) or {}, patch)
    if merged:
        services[service] = merged
    else:
        services.pop(service, None)
    if services:
        result["services"] = services
    else:
        result.pop("services", None)
    return result
