from __future__ import annotations

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class IdentityConfig(AppConfig):
    """The CA, join tokens and the certificates issued to sidecars (docs/security.md)."""

    name = "meshui.identity"
    label = "identity"
    verbose_name = "Identity"

    def ready(self) -> None:
        from pathlib import Path

        from django.conf import settings

        from meshui.identity.authority import current_authority, extra_roots
        from meshui.identity.certs import CaProblem

        # The operator's CA files (and any extra roots) are checked now, so a bad one stops
        # the start naming the variable; a generated root is made on first use instead, so a
        # management command does not write key files it never needs.
        try:
            if settings.MESHUI_CA_CERT:
                current_authority()
            elif settings.MESHUI_CA_EXTRA_ROOTS:
                extra_roots(Path(settings.MESHUI_CA_EXTRA_ROOTS))
        except CaProblem as exc:
            raise ImproperlyConfigured(str(exc)) from None
