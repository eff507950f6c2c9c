"""Text from the network as literal Plotly text (the figure modules' one escape).

Plotly renders a subset of HTML in text and hover text (<a>, <span style>, <b>, <br> ...),
turns newlines into <br>, reads $...$ as LaTeX and decodes HTML entities inside text runs
(plotly.js src/lib/svg_text_utils.js). A service name, a version, anything that came from
the network, is text: every character Plotly could interpret is written as a numeric entity,
which Plotly decodes back into that literal character and never into markup.
"""

from __future__ import annotations

import re

_PLOTLY_SPECIAL = re.compile(r"[&<>\"'$\r\n]")


def plotly_text(value: object) -> str:
    """``value`` as literal Plotly text: no tag, entity, line break or TeX can come from it."""
    return _PLOTLY_SPECIAL.sub(lambda m: f"&#{ord(m.group())};", str(value))
