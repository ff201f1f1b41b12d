"""cex: a Kubernetes-native centralized crypto exchange.

Layout (DESIGN.md §2): ``cex.core`` is the pure domain, ``cex.infra`` the shared
adapters, one subpackage per service around them, ``cex.stack`` the local stack.
"""

__version__ = "0.1.0"
