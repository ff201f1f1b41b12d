"""Who a gateway client is, for its per-IP limits, behind trusted proxies or not (pure)."""

from __future__ import annotations

from cex.gateway.server import client_ip, trusted_proxies

INGRESS = trusted_proxies("10.0.0.0/8, 192.168.1.7")


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_ip("203.0.113.9", "198.51.100.1", trusted_proxies("")) == "203.0.113.9"
    assert client_ip("10.1.2.3", None, INGRESS) == "10.1.2.3"


def test_a_trusted_proxy_names_the_client() -> None:
    assert client_ip("10.1.2.3", "198.51.100.1", INGRESS) == "198.51.100.1"
    # Our proxies append themselves; what the client wrote further left is not believed.
    assert client_ip("10.1.2.3", "6.6.6.6, 198.51.100.1, 192.168.1.7", INGRESS) == "198.51.100.1"


def test_an_untrusted_peer_cannot_claim_another_address() -> None:
    assert client_ip("203.0.113.9", "198.51.100.1", INGRESS) == "203.0.113.9"


def test_every_proxy_trusted_takes_the_first_address() -> None:
    assert client_ip("203.0.113.9", "198.51.100.1, 10.0.0.1", trusted_proxies("*")) == (
        "198.51.100.1"
    )
