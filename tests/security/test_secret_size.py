"""A secret's value must fit in one environment string: past the kernel's limit (128 KiB for
NAME=value) every program the agent's shell starts fails with "Argument list too long"."""

from __future__ import annotations

from pathlib import Path

from tests.api.conftest import make_settings, serve


async def test_a_secret_too_large_for_an_environment_is_refused(tmp_path: Path) -> None:
    async with serve(make_settings(tmp_path)) as server:
        large = await server.client.post(
            "/api/secrets", json={"name": "BIG_TOKEN", "value": "z" * 200_000}
        )
        assert large.status_code == 422, large.text
        assert "64 KiB" in large.text
        multibyte = await server.client.post(
            "/api/secrets", json={"name": "WIDE_TOKEN", "value": "\u00e9" * 40_000}
        )
        assert multibyte.status_code == 422, multibyte.text  # 80,000 bytes in UTF-8
        pem_sized = await server.client.post(
            "/api/secrets", json={"name": "DEPLOY_KEY", "value": "k" * 60_000}
        )
        assert pem_sized.status_code == 201, pem_sized.text
