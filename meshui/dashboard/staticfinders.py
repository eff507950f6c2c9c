"""A static-files finder that serves Plotly.js from the installed plotly package."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, overload

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import CheckMessage
from django.core.files.storage import FileSystemStorage

PLOTLY_DIR = Path(plotly.__file__).resolve().parent / "package_data"
PLOTLY_FILE = "plotly.min.js"
PREFIX = "vendor"


class PlotlyFinder(BaseFinder):
    """Exposes only ``plotly.min.js`` as ``vendor/plotly.min.js`` (not the 5 MB widget bundle)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=PLOTLY_DIR)
        self.storage.prefix = PREFIX  # type: ignore[attr-defined]

    @overload
    def find(self, path: str, find_all: Literal[False] = False, **kwargs: Any) -> str | None: ...

    @overload
    def find(self, path: str, find_all: Literal[True], **kwargs: Any) -> builtins.list[str]: ...

    def find(self, path: str, find_all: bool = False, **kwargs: Any
             ) -> str | builtins.list[str] | None:
        # ``all`` is the name Django before 5.2 gave ``find_all``.
        if path == f"{PREFIX}/{PLOTLY_FILE}":
            match = str(PLOTLY_DIR / PLOTLY_FILE)
            return [match] if find_all or kwargs.get("all") else match
        return [] if find_all or kwargs.get("all") else ""

    def list(self, ignore_patterns: Iterable[str] | None
             ) -> Iterator[tuple[str, FileSystemStorage]]:
        yield PLOTLY_FILE, self.storage

    def check(self, **kwargs: Any) -> builtins.list[CheckMessage]:
        return []
