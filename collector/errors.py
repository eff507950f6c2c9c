"""Errors the pipeline raises, each saying whether a retry can help."""

from __future__ import annotations

from dataclasses import dataclass


class ConfigError(ValueError):
    """A configuration value is invalid; the message starts with the offending key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


class InvalidRequest(ValueError):
    """An export request cannot be decoded: permanent, answered with 400 (never retried)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an export is refused for now: transient, answered with 503 + Retry-After.

    ``reason`` is the ``refused_total`` label (``queue_full``, ``write_backlog_full`` or
    ``redis_unavailable``); ``message`` goes to the client.
    """

    reason: str
    message: str
