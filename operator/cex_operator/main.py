"""``cex-operator``: run the operator (configuration: :mod:`cex_operator.settings`)."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=False)


@app.command()
def run(
    verbose: bool = typer.Option(False, "--verbose", help="Log at DEBUG level."),
) -> None:
    """Watch Market resources and reconcile them (cluster-wide unless
    CEX_OPERATOR_NAMESPACES lists namespaces). One of several replicas is active at a time
    (Kopf peering); the others wait."""
    import logging

    import kopf

    import cex_operator.handlers  # noqa: F401  (registers the handlers)
    from cex_operator.settings import OperatorSettings

    settings = OperatorSettings()
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON)
    if not verbose:  # one line per API call otherwise
        logging.getLogger("httpx").setLevel(logging.WARNING)
    kopf.run(
        clusterwide=settings.clusterwide,
        namespaces=settings.namespace_list,
        liveness_endpoint=f"http://{settings.http_host}:{settings.health_port}/healthz",
    )


def main() -> None:
    app()
