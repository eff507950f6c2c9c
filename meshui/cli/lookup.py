"""``ID|NAME``: a rule or a contact point named by its id or by its name.

A number is an id (as kubectl takes a name and Grafana's CLI an id, meshctl takes both;
a rule literally named ``42`` is reached by its id); anything else is looked up in the
list the API gives, matched exactly.
"""

from __future__ import annotations

from meshui.cli.context import Context
from meshui.cli.errors import refused
from meshui.cli.terminal import clean


def find_id(ctx: Context, ref: str, path: str, key: str, what: str) -> int:
    """The id of the ``what`` that ``ref`` names, from ``GET path`` (``{key: [...]}``)."""
    text = ref.strip()
    if text.isdigit():
        return int(text)
    listed = ctx.client.get(path).get(key) or []
    for item in listed:
        if item.get("name") == text:
            return int(item["id"])
    names = sorted(str(item.get("name", "")) for item in listed)
    known = (f"; there are: {', '.join(repr(n) for n in names[:10])}"
             + (" ..." if len(names) > 10 else "")) if names else f"; there is no {what} yet"
    raise refused(clean(f"there is no {what} named {text!r}{known}"))


def rule_id(ctx: Context, ref: str) -> int:
    return find_id(ctx, ref, "/alerts/rules", "rules", "alert rule")


def contact_point_id(ctx: Context, ref: str) -> int:
    return find_id(ctx, ref, "/alerts/contact-points", "contact_points", "contact point")


def contact_point_ids(ctx: Context, refs: list[str]) -> list[int]:
    """Ids of contact points named by id or name (one list request for all the names)."""
    ids = []
    names: dict[str, int] | None = None
    for ref in refs:
        text = ref.strip()
        if text.isdigit():
            ids.append(int(text))
            continue
        if names is None:
            listed = ctx.client.get("/alerts/contact-points").get("contact_points") or []
            names = {str(item.get("name")): int(item["id"]) for item in listed}
        if text not in names:
            known = ", ".join(repr(n) for n in sorted(names)[:10]) or "none yet"
            raise refused(clean(f"--contact-point {text!r}: there is no contact point of that "
                                f"name (there are: {known})"))
        ids.append(names[text])
    return ids
