"""Benchmark the guard decorators: throughput and latency of one database-backed route behind each guard stack.

Over HTTP, gunicorn (sync workers) serves each variant of ``benchmarks/apps.py``
in turn and wrk drives it from its own process. In process, the same apps are
called as WSGI callables in a loop, which leaves out the network and the HTTP
server. Each round runs every variant once, interleaved, so that drift affects
all alike; each variant's throughput is divided by bare Flask's in the same
round, and the table reports the median over the rounds.

A private redis-server holds the rate-limit counters; PostgreSQL holds the rows.
The federation tables of the given database are dropped and recreated.

Usage:
    createdb -h 127.0.0.1 -U postgres bench_guards
    python -m benchmarks.guards --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_guards
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.test import EnvironBuilder

from .apps import VARIANTS, create_app
from .seed import Seed, seed_database
from .support import WrkResult, gunicorn, load_average, private_redis, run_wrk, versions

DESCRIPTIONS = {
    "bare": "bare Flask + Flask-SQLAlchemy",
    "extension": "+ `Federation(app)`, no guard",
    "auth": "+ `with_provider_auth`",
    "ratelimit": "+ `with_rate_limit` (per address)",
    "audit": "+ `with_audit` (anonymous chain)",
    "auth_ratelimit": "+ auth + rate limit",
    "full": "full stack: audit + rate limit + auth (defaults)",
    "full_batched": "full stack, audit events batched",
    "full_cached": "full stack, API key cache of 5 s",
    "full_opt_in": "full stack, batched audit and API key cache",
    "handmade": "Flask-HTTPAuth + Flask-Limiter (by hand)",
}


@dataclasses.dataclass(frozen=True)
class InProcessResult:
    calls_per_second: float
    p50_ms: float
    p99_ms: float
    #: CPU time of this process per call: the framework's own work, without waiting for PostgreSQL or Redis.
    cpu_ms: float


def _headers(seed: Seed) -> dict[str, str]:
    return {"Authorization": f"Bearer {seed.api_key}"}


def run_http(
    seed: Seed, database_url: str, redis_url: str, variants: Iterable[str], rounds: int, seconds: int
) -> dict[str, list[WrkResult]]:
    """Serve each variant with gunicorn in turn and drive it with wrk; return every round's result per variant."""
    results: dict[str, list[WrkResult]] = {variant: [] for variant in variants}
    for round_number in range(1, rounds + 1):
        for variant in results:
            environment = {
                "BENCH_VARIANT": variant,
                "BENCH_DATABASE_URL": database_url,
                "BENCH_REDIS_URL": redis_url,
                "BENCH_PROVIDER_PK": str(seed.provider_pk),
            }
            with gunicorn("benchmarks.apps:create_app()", environment) as server:
                url = f"{server.url}/tenants/{seed.tenant_id}"
                # Warm-up: connections, imports and the first-use paths are not counted.
                run_wrk(url, _headers(seed), seconds=2, max_requests=2_000)
                result = run_wrk(url, _headers(seed), seconds=seconds, max_requests=seconds * 5_000)

            if result.non_2xx or result.socket_errors:
                print(f"  warning: {variant}: {result.non_2xx} non-2xx responses, {result.socket_errors} socket errors")

            print(f"  round {round_number} {variant}: {result.requests_per_second:.0f} req/s", file=sys.stderr)
            results[variant].append(result)

    return results


def _wsgi_caller(app: Flask, path: str, headers: dict[str, str]) -> Callable[[], int]:
    template = EnvironBuilder(path=path, headers=list(headers.items()), base_url="http://127.0.0.1/").get_environ()
    statuses: list[str] = []

    def start_response(status: str, response_headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        statuses.append(status)
        return lambda data: None

    def call() -> int:
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO()
        statuses.clear()
        body = app(environ, start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
        return int(statuses[0].split()[0])

    return call


def run_in_process(
    seed: Seed, database_url: str, redis_url: str, variants: Iterable[str], rounds: int, requests: int
) -> dict[str, list[InProcessResult]]:
    """Call each variant's WSGI app ``requests`` times per round and return each round's figures."""
    callers = {}
    for variant in variants:
        app = create_app(variant, database_url, redis_url, seed.provider_pk)
        callers[variant] = _wsgi_caller(app, f"/tenants/{seed.tenant_id}", _headers(seed))
        for _ in range(200):
            callers[variant]()

    results: dict[str, list[InProcessResult]] = {variant: [] for variant in callers}
    for _ in range(rounds):
        for variant, call in callers.items():
            samples = []
            cpu_started = time.process_time()
            started = time.perf_counter()
            for _ in range(requests):
                before = time.perf_counter()
                status = call()
                samples.append((time.perf_counter() - before) * 1000)
                if status != 200:
                    raise RuntimeError(f"Variant {variant} answered {status}; the benchmark expects 200 throughout.")

            elapsed = time.perf_counter() - started
            cpu_ms = (time.process_time() - cpu_started) * 1000 / requests
            quantiles = statistics.quantiles(samples, n=100)
            results[variant].append(InProcessResult(requests / elapsed, quantiles[49], quantiles[98], cpu_ms))

    return results


def _ratios(values: dict[str, list[float]]) -> dict[str, str]:
    """Return each variant's throughput divided by bare Flask's in the same round: the median and the range over rounds."""
    bare = values["bare"]
    ratios = {}
    for variant, series in values.items():
        per_round = [value / base for value, base in zip(series, bare, strict=True)]
        ratios[variant] = f"{statistics.median(per_round):.2f} ({min(per_round):.2f} to {max(per_round):.2f})"

    return ratios


def print_http_table(results: dict[str, list[WrkResult]]) -> None:
    ratios = _ratios({variant: [result.requests_per_second for result in series] for variant, series in results.items()})
    print("| variant | req/s | p50 (ms) | p99 (ms) | ratio to bare (range) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for variant, series in results.items():
        print(
            f"| {DESCRIPTIONS[variant]} | {statistics.median(r.requests_per_second for r in series):.0f} "
            f"| {statistics.median(r.p50_ms for r in series):.2f} | {statistics.median(r.p99_ms for r in series):.2f} "
            f"| {ratios[variant]} |"
        )


def print_in_process_table(results: dict[str, list[InProcessResult]]) -> None:
    ratios = _ratios({variant: [result.calls_per_second for result in series] for variant, series in results.items()})
    bare_cpu = statistics.median(result.cpu_ms for result in results["bare"])
    print("| variant | calls/s | p50 (ms) | p99 (ms) | CPU per call (ms) | CPU added to bare (ms) | ratio to bare (range) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for variant, series in results.items():
        cpu_ms = statistics.median(result.cpu_ms for result in series)
        print(
            f"| {DESCRIPTIONS[variant]} | {statistics.median(result.calls_per_second for result in series):.0f} "
            f"| {statistics.median(result.p50_ms for result in series):.3f} "
            f"| {statistics.median(result.p99_ms for result in series):.3f} "
            f"| {cpu_ms:.3f} | {cpu_ms - bare_cpu:+.3f} | {ratios[variant]} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url", required=True, help="PostgreSQL URL of a database whose federation tables the benchmark may drop."
    )
    parser.add_argument(
        "--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), help="Variants to run; bare is always added."
    )
    parser.add_argument("--rounds", type=int, default=2, help="Rounds over all variants; medians are reported.")
    parser.add_argument("--seconds", type=int, default=10, help="Duration of each timed wrk run, in seconds.")
    parser.add_argument("--in-process-requests", type=int, default=3_000, help="WSGI calls per variant and round.")
    parser.add_argument("--skip-http", action="store_true", help="Skip the gunicorn and wrk runs.")
    parser.add_argument("--skip-in-process", action="store_true", help="Skip the in-process runs.")
    arguments = parser.parse_args()
    variants = ["bare", *(variant for variant in arguments.variants if variant != "bare")]

    print(versions())
    print(f"Start: {load_average()}")
    with private_redis() as redis_url:
        seed = seed_database(arguments.database_url)
        if not arguments.skip_http:
            http = run_http(seed, arguments.database_url, redis_url, variants, arguments.rounds, arguments.seconds)
            print(f"\nHTTP: gunicorn -w 2 (sync), wrk -t 1 -c 4, {arguments.seconds} s per run, median of {arguments.rounds} rounds\n")
            print_http_table(http)

        if not arguments.skip_in_process:
            in_process = run_in_process(
                seed, arguments.database_url, redis_url, variants, arguments.rounds, arguments.in_process_requests
            )
            print(
                f"\nIn process: WSGI calls in a loop, {arguments.in_process_requests} per variant and round, "
                f"median of {arguments.rounds} rounds\n"
            )
            print_in_process_table(in_process)

    print(f"\nEnd: {load_average()}")


if __name__ == "__main__":
    main()
