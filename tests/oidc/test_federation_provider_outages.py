"""Key rotation and OpenID provider outages, seen through the federation routes of a running app."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask

from ..conftest import World, bearer
from .apps import oidc_config
from .idp import PROVIDER_AUDIENCE, LocalIdP

TENANTS = "/federation/provider/v1/tenants"


def provider_token(idp: LocalIdP, world: World) -> str:
    return idp.client_credentials_token(PROVIDER_AUDIENCE, "tenants:read", provider_id=world.provider_a.public_id)


def test_rotated_keys_accepted_without_restart(make_app: Callable[..., Flask], private_idp: LocalIdP) -> None:
    # Cooldown 0: an unknown kid refetches the JWKS at once. The TTL is long, so the
    # old key stays cached until that refetch replaces the whole key set.
    app = make_app(**oidc_config(private_idp.issuer, FEDERATION_OIDC_JWKS_REFETCH_COOLDOWN_SECONDS=0))
    with app.app_context():
        world = World()
        client = app.test_client()
        old_token = provider_token(private_idp, world)
        assert client.get(TENANTS, headers=bearer(old_token)).status_code == 200

        private_idp.restart(new_keys=True)
        new_token = provider_token(private_idp, world)

        assert client.get(TENANTS, headers=bearer(old_token)).status_code == 200
        assert client.get(TENANTS, headers=bearer(new_token)).status_code == 200
        rejected = client.get(TENANTS, headers=bearer(old_token))

    assert rejected.status_code == 401
    assert "key that the issuer does not publish" in rejected.json["error"]["message"]


def test_cached_keys_serve_while_provider_down(
    make_app: Callable[..., Flask], private_idp: LocalIdP, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_federation")
    # A TTL of 1 ms makes every request after the first one try to refresh the JWKS.
    app = make_app(**oidc_config(private_idp.issuer, FEDERATION_OIDC_JWKS_TTL_SECONDS=0.001))
    with app.app_context():
        world = World()
        client = app.test_client()
        token = provider_token(private_idp, world)
        assert client.get(TENANTS, headers=bearer(token)).status_code == 200

        private_idp.stop()
        statuses = [client.get(TENANTS, headers=bearer(token)).status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert len([record for record in caplog.records if "cached keys" in record.getMessage()]) == 1


def test_cold_start_with_provider_down_is_503(
    make_app: Callable[..., Flask], private_idp: LocalIdP, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_federation")
    app = make_app(**oidc_config(private_idp.issuer, FEDERATION_OIDC_JWKS_REFETCH_COOLDOWN_SECONDS=0))
    with app.app_context():
        world = World()
        client = app.test_client()
        token = provider_token(private_idp, world)
        private_idp.stop()

        down = [client.get(TENANTS, headers=bearer(token)) for _ in range(2)]
        private_idp.start()
        recovered = client.get(TENANTS, headers=bearer(token))

    for response in down:
        assert response.status_code == 503
        assert response.json["error"]["code"] == "service_unavailable"
        assert response.headers["Retry-After"] == "1"
    assert recovered.status_code == 200
    assert len([record for record in caplog.records if "OpenID provider" in record.getMessage()]) == 1
    assert token not in caplog.text


def test_api_keys_work_while_provider_down(make_app: Callable[..., Flask], private_idp: LocalIdP) -> None:
    app = make_app(**oidc_config(private_idp.issuer))
    private_idp.stop()
    with app.app_context():
        world = World()
        response = app.test_client().get(TENANTS, headers=bearer(world.key_a))

    assert response.status_code == 200
