"""Writing revisions: validate, check the base, number, store, audit, then push after commit.

Every write names the revision it was based on (``parent``; 0 before the first). If the
current revision is another, someone else wrote in between: ``StaleParent`` (409 with the
current one), never a silent overwrite. Of two writes on the same parent at once exactly one
wins: the current row is locked (``select_for_update``) and the revision number is unique,
so the loser's insert fails and it is told the parent is stale.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest

from meshui.policy import audit, diff, push
from meshui.policy.models import Action, Revision, Source
from meshui.policy.validation import Validation, registry_view, validate


class StaleParent(Exception):
    """The write was based on a revision that is no longer the current one."""

    def __init__(self, parent: int, current: Revision | None) -> None:
        number = current.number if current else 0
        super().__init__(f"the write was based on revision {parent}, but the current revision "
                         f"is {number}; reload, re-apply your change to it and try again")
        self.current = current


class InvalidPolicy(Exception):
    """The document would be rejected by the sidecars; ``validation`` says where."""

    def __init__(self, validation: Validation) -> None:
        first = validation.errors[0]
        super().__init__(f"{first.field}: {first.detail}")
        self.validation = validation


@dataclass(frozen=True, slots=True)
class Written:
    revision: Revision
    warnings: tuple[Any, ...]


def current_document() -> tuple[int, dict[str, Any]]:
    """The current revision's number and document (0 and ``{}``, all defaults, before any)."""
    current = Revision.objects.current()
    return (0, {}) if current is None else (current.number, current.document)


def check(document: Any) -> Validation:
    return validate(document, registry_view())


def write(request: HttpRequest | None, document: Mapping[str, Any], *, parent: int,
          message: str, source: Source, action: Action = Action.REVISION) -> Written:
    """Store ``document`` as the next revision after ``parent`` and push it after commit.

    ``request`` is the write's request (author and audit); None for the seed command.
    """
    validation = check(document)
    if not validation.valid:
        raise InvalidPolicy(validation)
    user = getattr(request, "user", None)
    author = user if user is not None and user.is_authenticated else None
    try:
        with transaction.atomic():
            current = Revision.objects.select_for_update().newest_first().first()
            if (current.number if current else 0) != parent:
                raise StaleParent(parent, current)
            revision = Revision.objects.create(
                number=parent + 1, parent=parent or None, document=dict(document),
                author=author, author_name=author.get_username() if author else "",
                message=message, source=source)
            if request is not None:
                audit.record(request, action, source=source, revision=revision.number,
                             detail=message)
            # robust: a push that fails (Redis down) is logged; the sidecars show STALE.
            transaction.on_commit(functools.partial(push.publish, revision), robust=True)
    except IntegrityError:
        # Another write on the same parent committed first (the unique revision number).
        raise StaleParent(parent, Revision.objects.current()) from None
    return Written(revision, validation.warnings)


def revision_or_none(number: int) -> Revision | None:
    return Revision.objects.filter(number=number).first()


def label(number: int) -> str:
    """How a diff names revision ``number`` (0: before any, the defaults)."""
    return f"revision {number}" if number else "defaults"


def between(old: Revision | None, new: Revision | None) -> dict[str, Any]:
    """The structured and the text diff from ``old`` to ``new`` (None: the defaults, {})."""
    return diff.report(old.document if old else {}, new.document if new else {},
                       label(old.number if old else 0), label(new.number if new else 0))
