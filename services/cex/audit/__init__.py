"""Audits of the exchange's financial invariants (``cex check``)."""
