"""Errors the pipeline raises, each saying whether a retry can help."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid; the message starts with the offending key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


class InvalidRequest(ValueError):
    """An export request cannot be decoded: permanent, answered with 400 (never retried)."""
