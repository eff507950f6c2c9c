"""``python -m meshui.cli``: the same as the ``meshctl`` console script."""

from __future__ import annotations

from meshui.cli.main import run

run()
