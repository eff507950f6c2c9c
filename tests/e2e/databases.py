"""A database of one end-to-end mesh's own: SQLite in its folder, or a fresh PostgreSQL one.

Every mesh keeps its registry and its policy revisions in the database; two meshes sharing
one (and CI runs, one after another, sharing the machine's PostgreSQL) would mix each other's
endpoints and push each other's revisions.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def own_database(workdir: Path, label: str = "e2e") -> Iterator[str]:
    """The DATABASE_URL for one mesh; a PostgreSQL database is dropped afterwards."""
    shared = os.environ.get("DATABASE_URL", "")
    if not shared.startswith("postgres"):
        yield f"sqlite:///{workdir / 'db.sqlite3'}"
        return
    import psycopg

    name = f"meshui_{label}_{secrets.token_hex(4)}"
    with psycopg.connect(shared, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield shared.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(shared, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
