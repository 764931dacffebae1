"""CONVO_SESSION_API_KEY guards every /api route; /alive and /health stay open."""

from __future__ import annotations

import re

from tests.api.conftest import ServeFactory


async def test_every_api_route_needs_the_key(server_factory: ServeFactory) -> None:
    async with server_factory(session_api_key="s3cret") as server:
        paths = (await server.client.get("/openapi.json")).json()["paths"]
        routes = [
            (method.upper(), re.sub(r"\{[^}]+\}", "abc", path))
            for path, item in paths.items()
            if path.startswith("/api")
            for method in item
        ]
        assert len(routes) >= 30
        for method, path in routes:
            for headers in ({}, {"X-Session-API-Key": "wrong"}):
                response = await server.client.request(method, path, headers=headers)
                assert response.status_code == 401, (method, path, response.status_code)
                assert response.json() == {"detail": "Unauthorized"}
        ok = await server.client.get("/api/conversations", headers={"X-Session-API-Key": "s3cret"})
        assert ok.status_code == 200
        assert (await server.client.get("/alive")).status_code == 200
        assert (await server.client.get("/health")).status_code == 200
