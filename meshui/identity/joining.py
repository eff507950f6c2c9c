"""Who may open a control connection: a join token, checked at the handshake and again at
every CSR (docs/security.md, "Joining: join tokens").

A revoked token's connections are closed at once through the channel-layer group named for
the token (``token_group``): the consumer joins it *before* it reads the token's row, so a
revocation that commits after that read finds it in the group, and one that committed
before is seen by the read. The group is named for the token's digest, which the consumer
has before any database read (the digest of a 256-bit random token reveals nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from meshui.identity.models import (
    LAST_USED_RESOLUTION,
    JoinToken,
    TokenState,
    looks_like_token,
    token_digest,
)
from meshui.registry.frames import TOKEN_EXPIRED, TOKEN_REVOKED

# Close code of a connection whose join token was revoked or expired (HTTP's 401 in the
# application range of RFC 6455); 4403: its hello or CSR named another service's identity.
TOKEN_CLOSE = 4401
IDENTITY_CLOSE = 4403
REVOKED_MESSAGE = "join_token.revoked"  # the channel-layer message (consumer handler)


def token_group(token_hash: str) -> str:
    """The channel-layer group of every connection that joined with one token."""
    return f"join-token.{token_hash[:32]}"


@dataclass(frozen=True, slots=True)
class Grant:
    """What an accepted handshake's token allows: one service, under one token row."""

    token_id: int
    service: str
    prefix: str


@dataclass(frozen=True, slots=True)
class Admission:
    grant: Grant | None
    reason: str  # why not (for the log), or "" when admitted


def presented_digest(token: str | None) -> str | None:
    """The digest of a presented token, or None when it cannot be a join token at all."""
    if token is None or not looks_like_token(token):
        return None
    return token_digest(token)


def admit(token_hash: str, now: datetime) -> Admission:
    """Whether the token with ``token_hash`` may open a connection now; records its use."""
    row = JoinToken.objects.filter(token_hash=token_hash).first()
    if row is None:
        return Admission(None, "unknown join token")
    state = row.state(now)
    if state is TokenState.REVOKED:
        return Admission(None, f"revoked join token {row.prefix}... of {row.service} "
                               f"(revoked {row.revoked_at:%Y-%m-%d %H:%M:%S} UTC)")
    if state is TokenState.EXPIRED:
        return Admission(None, f"expired join token {row.prefix}... of {row.service} "
                               f"(expired {row.expires_at:%Y-%m-%d %H:%M:%S} UTC)")
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        JoinToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return Admission(Grant(row.pk, row.service, row.prefix), "")


class TokenRefused(Exception):
    """The connection's token no longer allows anything (``code``: token_revoked/expired)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def still_allowed(grant: Grant, now: datetime) -> None:
    """Raise TokenRefused unless the grant's token is still active (checked per CSR)."""
    row = JoinToken.objects.filter(pk=grant.token_id).first()
    state = TokenState.REVOKED if row is None else row.state(now)
    if state is TokenState.REVOKED:
        raise TokenRefused(TOKEN_REVOKED, f"the join token {grant.prefix}... was revoked; "
                                          "create a new one for this sidecar")
    if state is TokenState.EXPIRED:
        raise TokenRefused(TOKEN_EXPIRED, f"the join token {grant.prefix}... expired; create "
                                          "a new one for this sidecar")
