"""The matching engine of one market, split along its seams (see :mod:`.engine`).

``from cex.core.matching import MatchingEngine``.
"""

from cex.core.matching.engine import SNAPSHOT_VERSION, MatchingEngine

__all__ = ["SNAPSHOT_VERSION", "MatchingEngine"]
