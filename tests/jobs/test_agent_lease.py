"""A pool node looks at every server of the service before it stops."""

from __future__ import annotations

import pytest
from tests.conftest import free_port

from cumulo import Workspace
from cumulo.core.settings import Settings
from cumulo.sdk.agent import node_endpoint
from cumulo.services.context import open_services
from cumulo.services.scheduler import Endpoint, PoolNodeWorker


def test_a_pool_node_stops_only_when_no_server_of_the_service_answers(
    ws: Workspace, cumulo_server_url: str
) -> None:
    assert ws._settings is not None
    services = open_services(ws._settings)
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]

    def gone(*urls: str) -> bool:
        endpoint = Endpoint(urls[0], urls=urls)
        return PoolNodeWorker(services, ws.name, "pool", "node", endpoint)._server_gone()

    assert not gone(dead[0], cumulo_server_url)  # the first address is down, not the service
    assert not gone(cumulo_server_url, dead[0])
    assert gone(*dead)


def test_a_pool_node_knows_every_address_of_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUMULO_URL", "http://a:1")
    monkeypatch.setenv("CUMULO_URLS", "http://a:1, http://b:2/")
    endpoint = node_endpoint(Settings.load())
    assert endpoint.url == "http://a:1"
    assert endpoint.urls == ("http://a:1", "http://b:2")
