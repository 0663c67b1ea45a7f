"""Hostile input found by probing a running server: each case once gave a 500 or stored invalid data."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from flask_federation.request_id import is_valid_request_id

from .conftest import World, bearer

TENANTS = "/federation/provider/v1/tenants"


def _write_headers(key: str) -> dict[str, str]:
    return {**bearer(key), "Idempotency-Key": uuid.uuid4().hex}


@pytest.mark.parametrize("field, value", [("slug", "a-one\n"), ("region", "eu-west-1\n")])
def test_trailing_newline_rejected_on_create(client: Any, world: World, field: str, value: str) -> None:
    # Python's "$" also matches before a final newline, which once let "a-one\n" past the slug
    # pattern and around the per-provider uniqueness of "a-one".
    body = {"name": "Shop", "slug": "shop", "region": "eu-west-1", field: value}
    response = client.post(TENANTS, json=body, headers=_write_headers(world.key_a))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert set(response.json["error"]["details"]) == {field}


def test_trailing_newline_rejected_on_update(client: Any, world: World) -> None:
    response = client.patch(
        f"{TENANTS}/{world.tenant_a.public_id}", json={"slug": "renamed\n"}, headers=_write_headers(world.key_a)
    )
    assert response.status_code == 422
    assert set(response.json["error"]["details"]) == {"slug"}


def test_request_id_with_trailing_newline_invalid() -> None:
    assert is_valid_request_id("abc")
    assert not is_valid_request_id("abc\n")
