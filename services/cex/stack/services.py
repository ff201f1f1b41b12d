"""The services `cex stack up` runs beside the infrastructure, as supervisord programs.

Each later service adds its programs and endpoints here (one `cex serve …` process each).
"""

from __future__ import annotations

from cex.stack.components import Program
from cex.stack.settings import StackSettings


def programs(settings: StackSettings) -> tuple[list[Program], dict[str, str]]:
    """The service programs to run and the endpoints they expose (name → address)."""
    del settings  # no service exists yet
    return [], {}
