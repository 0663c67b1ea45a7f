"""Benchmark keyset (cursor) pagination against offset pagination on PostgreSQL.

Seeds three providers with 1,000, 100,000 and 1,000,000 tenants (once; reruns
reuse the rows), then times the first page and a page 10,000 rows deep through
the federation route, and offset pagination (Flask-SQLAlchemy ``paginate``) at
the same depth. Prints a Markdown table and the EXPLAIN ANALYZE of both deep
queries.

Usage:
    python benchmarks/pagination.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from flask_federation import Federation, admin
from flask_federation.auth.principal import Principal
from flask_federation.entitlements import Audience
from flask_federation.models import Provider, Tenant, metadata
from flask_federation.services import tenants
from flask_federation.services.pagination import encode_cursor
from flask_federation.state import get_state

SIZES = (1_000, 100_000, 1_000_000)
PAGE_SIZE = 100
DEEP_OFFSET = 10_000


def build_app(database_url: str) -> Flask:
    app = Flask("pagination_benchmark")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        SECRET_KEY="benchmark-only",  # noqa: S106 (signs benchmark cursors only)
        FEDERATION_ENABLED=True,
        FEDERATION_MAX_PAGE_SIZE=PAGE_SIZE,
    )
    Federation(app)
    return app


def seed(size: int) -> Provider:
    """Return the provider named for ``size``, inserting its tenants with one INSERT ... SELECT if needed."""
    session = get_state().session
    name = f"bench-{size}"
    provider = session.execute(select(Provider).where(Provider.name == name)).scalar_one_or_none()
    if provider is not None:
        return provider

    provider = admin.create_provider(name)
    # generate_series keeps a million-row seed to seconds; created_at steps by one second per row.
    session.execute(
        text(
            "INSERT INTO federation_tenants (public_id, provider_id, name, slug, status, region, metadata, created_at, updated_at) "
            "SELECT 'ten_b' || :size || 'x' || n, :provider_id, 'Tenant ' || n, 'tenant-' || n, "
            "CASE WHEN n % 10 = 0 THEN 'suspended' ELSE 'active' END, 'eu-west-1', '{}'::jsonb, "
            "now() - make_interval(secs => n), now() - make_interval(secs => n) "
            "FROM generate_series(1, :size) AS n"
        ),
        {"size": size, "provider_id": provider.id},
    )
    session.commit()
    session.execute(text("ANALYZE federation_tenants"))
    session.commit()
    return provider


def median_ms(calls: list[Callable[[], Any]], repeat: int) -> list[float]:
    """Return the median time of each call in ms, running them interleaved so drift hits all alike."""
    for call in calls:
        call()  # Warm caches and the connection pool; the first call is not counted.

    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(repeat):
        for index, call in enumerate(calls):
            started = time.perf_counter()
            call()
            samples[index].append((time.perf_counter() - started) * 1000)

    return [statistics.median(series) for series in samples]


def deep_cursor(provider: Provider) -> str:
    session = get_state().session
    row = session.execute(
        select(Tenant.created_at, Tenant.id)
        .where(Tenant.provider_id == provider.id)
        .order_by(Tenant.created_at.desc(), Tenant.id.desc())
        .offset(DEEP_OFFSET - 1)
        .limit(1)
    ).one()
    return encode_cursor(provider.public_id, {"status": None}, row.created_at, row.id)


def explain(sql: str, params: dict[str, Any]) -> str:
    rows = get_state().session.execute(text("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + sql), params)
    return "\n".join(row[0] for row in rows)


def measure(size: int, client: FlaskClient, repeat: int) -> None:
    """Print one table row: cursor, offset and HTTP route timings for a provider of ``size`` tenants."""
    provider = seed(size)
    key = admin.issue_key(provider.public_id, ["tenants:read"]).key
    headers = {"Authorization": f"Bearer {key}"}
    url = f"/federation/provider/v1/tenants?limit={PAGE_SIZE}"
    cursor = deep_cursor(provider) if size > DEEP_OFFSET else None

    principal = Principal(Audience.PROVIDER, provider.public_id, provider.id, provider.name, None, frozenset({"tenants:read"}), "api_key")

    def first_page() -> None:
        assert tenants.list_tenants(principal, limit=PAGE_SIZE).items

    def deep_page() -> None:
        assert tenants.list_tenants(principal, limit=PAGE_SIZE, cursor=cursor).items

    def first_route() -> None:
        assert client.get(url, headers=headers).status_code == 200

    def deep_route() -> None:
        assert client.get(f"{url}&cursor={cursor}", headers=headers).status_code == 200

    query = select(Tenant).where(Tenant.provider_id == provider.id).order_by(Tenant.created_at.desc(), Tenant.id.desc())

    def offset_page(page: int) -> Callable[[], None]:
        def run() -> None:
            # count=False: Flask-SQLAlchemy's total count scans every row of the provider and would
            # dominate; the comparison is about fetching the page itself.
            result = get_state().db.paginate(query, page=page, per_page=PAGE_SIZE, error_out=False, count=False)
            assert result.items

        return run

    if cursor is None:
        cursor_first, offset_first, route_first = median_ms([first_page, offset_page(1), first_route], repeat)
        print(f"| {size:,} | {cursor_first:.2f} | n/a | n/a | {offset_first:.2f} | n/a | n/a | {route_first:.2f} | n/a |")
        return

    cursor_first, cursor_deep, offset_first, offset_deep, route_first, route_deep = median_ms(
        [first_page, deep_page, offset_page(1), offset_page(DEEP_OFFSET // PAGE_SIZE + 1), first_route, deep_route],
        repeat,
    )
    print(
        f"| {size:,} | {cursor_first:.2f} | {cursor_deep:.2f} | {cursor_deep / cursor_first:.2f} "
        f"| {offset_first:.2f} | {offset_deep:.2f} | {offset_deep / offset_first:.2f} "
        f"| {route_first:.2f} | {route_deep:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="PostgreSQL URL of a database the benchmark may fill.")
    parser.add_argument("--repeat", type=int, default=100, help="Timed calls per measurement; the median is reported.")
    arguments = parser.parse_args()

    app = build_app(arguments.database_url)
    with app.app_context():
        metadata.create_all(get_state().db.engine)
        client = app.test_client()
        print(
            f"| tenants | cursor first (ms) | cursor {DEEP_OFFSET:,} deep (ms) | ratio "
            f"| offset first (ms) | offset {DEEP_OFFSET:,} deep (ms) | ratio "
            f"| HTTP route first (ms) | HTTP route deep (ms) |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for size in SIZES:
            measure(size, client, arguments.repeat)

        largest = seed(SIZES[-1])
        row = (
            get_state()
            .session.execute(
                select(Tenant.created_at, Tenant.id)
                .where(Tenant.provider_id == largest.id)
                .order_by(Tenant.created_at.desc(), Tenant.id.desc())
                .offset(DEEP_OFFSET - 1)
                .limit(1)
            )
            .one()
        )
        keyset_sql = (
            "SELECT * FROM federation_tenants WHERE provider_id = :provider AND (created_at, id) < (:created_at, :id) "
            "ORDER BY created_at DESC, id DESC LIMIT 101"
        )
        offset_sql = (
            "SELECT * FROM federation_tenants WHERE provider_id = :provider ORDER BY created_at DESC, id DESC LIMIT 100 OFFSET :offset"
        )
        print(f"\nEXPLAIN ANALYZE, keyset page {DEEP_OFFSET:,} deep, {SIZES[-1]:,} tenants:\n")
        print(explain(keyset_sql, {"provider": largest.id, "created_at": row.created_at.replace(tzinfo=None), "id": row.id}))
        print(f"\nEXPLAIN ANALYZE, offset page {DEEP_OFFSET:,} deep, {SIZES[-1]:,} tenants:\n")
        print(explain(offset_sql, {"provider": largest.id, "offset": DEEP_OFFSET}))
        count = get_state().session.execute(select(func.count()).select_from(Tenant)).scalar_one()
        print(f"\n{count:,} tenant rows in the database.")


if __name__ == "__main__":
    main()
