"""Users of the web-app tests, in their roles (meshui/accounts/roles.py)."""

from __future__ import annotations

from django.contrib.auth.models import Group, User

from meshui.accounts.roles import Role


def make_user(username: str, role: Role | None = None, password: str = "pw") -> User:
    """A user holding ``role`` (None: no group, which reads as a viewer)."""
    user = User.objects.create_user(username, password=password)
    if role is not None:
        # get_or_create: transactional tests flush the groups the migration made.
        user.groups.add(Group.objects.get_or_create(name=role.value)[0])
    return user


def make_operator(username: str = "operator") -> User:
    return make_user(username, Role.OPERATOR)
