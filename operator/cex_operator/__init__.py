"""The cex Kubernetes operator (Kopf): reconciles ``Market`` resources (``crds/market.yaml``)
into provisioned markets with a matching-engine StatefulSet each. See :mod:`.handlers`.

Not named ``operator``: that is a standard-library module.
"""
