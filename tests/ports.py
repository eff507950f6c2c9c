"""Free TCP ports on loopback, for tests that need a port nothing listens on yet.

The demo finds its ports the same way, so the suite uses the demo's helpers rather than a
copy: ``free_port`` for one port, ``free_port_block`` for a whole demo mesh's run of them.
"""

from __future__ import annotations

from meshui.demo.processes import free_port, free_port_block

__all__ = ["free_port", "free_port_block"]
