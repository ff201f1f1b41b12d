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
    if not verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per API call
        logging.getLogger("kopf.objects").addFilter(_QuietTimer())
    kopf.run(
        clusterwide=settings.clusterwide,
        namespaces=settings.namespace_list,
        liveness_endpoint=f"http://{settings.http_host}:{settings.health_port}/healthz",
    )


class _QuietTimer:
    """Drops the "Timer 'observe' succeeded." line logged every few seconds per market."""

    def filter(self, record: object) -> bool:
        return "Timer 'observe' succeeded" not in str(getattr(record, "msg", ""))


def main() -> None:
    app()
