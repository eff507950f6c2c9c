"""Users of the web-app tests, in their roles (meshui/accounts/roles.py)."""

from __future__ import annotations

from django.contrib.auth.models import Group, User

from meshui.accounts.roles import Role


def make_user(username: str, role: Role | None = None, password: str = "pw") -> User:
    """A user holding ``role`` (None: no group, which reads as a viewer)."""
    user = User.objects.create_user(username, password=password)
    if role is not None:
        user.groups.add(Group.objects.get(name=role.value))
    return user


def make_operator(username: str = "operator") -> User:
    return make_user(username, Role.OPERATOR)
