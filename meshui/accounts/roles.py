"""The three roles (Django groups) and what each may do (docs/api.md, "Roles").

- ``viewer``: reads everything (any logged-in user without a group is a viewer);
- ``operator``: also edits traffic policy (revisions, rollbacks);
- ``admin``: also manages users and everyone's API tokens (a superuser is an admin).

Each role includes the ones below it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return ROLES.index(self)


ROLES: tuple[Role, ...] = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)


def role_of(user: Any) -> Role | None:
    """The highest role ``user`` holds (None for anonymous or inactive users)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    names = set(user.groups.values_list("name", flat=True))
    held = [role for role in ROLES if role.value in names]
    return held[-1] if held else Role.VIEWER


def has_role(user: Any, role: Role) -> bool:
    held = role_of(user)
    return held is not None and held.rank >= role.rank
