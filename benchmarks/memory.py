"""Measure the resident memory of gunicorn workers serving the full guard stack, from start-up to 100,000 requests.

gunicorn (two sync workers) serves the ``full`` variant of ``benchmarks/apps.py``
(audit, rate limit and API-key auth over one tenant read), or the one ``--variant``
names, with PostgreSQL and a private redis-server. wrk sends the requests in chunks of about equal size, each bounded by
its duration; after each chunk the script reads ``VmRSS`` of every worker from
``/proc/<pid>/status``.

Usage:
    createdb -h 127.0.0.1 -U postgres bench_memory
    python -m benchmarks.memory --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_memory
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .apps import VARIANTS
from .seed import seed_database
from .support import gunicorn, load_average, private_redis, run_wrk, versions

#: A request cap that no chunk reaches.
UNCAPPED = 10**9


def resident_kib(pid: int) -> int:
    """Return the resident set size of process ``pid`` in KiB, as ``/proc/<pid>/status`` reports it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line; is process {pid} a zombie?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url", required=True, help="PostgreSQL URL of a database whose federation tables the benchmark may drop."
    )
    parser.add_argument(
        "--variant", choices=VARIANTS, default="full", help="Variant of benchmarks/apps.py to serve (default: full)."
    )
    parser.add_argument("--requests", type=int, default=100_000, help="Requests in total, after a 5-second warm-up.")
    parser.add_argument("--chunks", type=int, default=4, help="How many equal chunks the requests are sent in.")
    parser.add_argument("--max-seconds", type=int, default=1_200, help="Upper bound on each chunk's duration, in seconds.")
    arguments = parser.parse_args()

    print(versions())
    print(f"Start: {load_average()}")
    with private_redis() as redis_url:
        seed = seed_database(arguments.database_url)
        environment = {
            "BENCH_VARIANT": arguments.variant,
            "BENCH_DATABASE_URL": arguments.database_url,
            "BENCH_REDIS_URL": redis_url,
            "BENCH_PROVIDER_PK": str(seed.provider_pk),
        }
        with gunicorn("benchmarks.apps:create_app()", environment) as server:
            url = f"{server.url}/tenants/{seed.tenant_id}"
            headers = {"Authorization": f"Bearer {seed.api_key}"}
            pids = server.worker_pids()
            print("\n| requests served | " + " | ".join(f"worker {number} VmRSS (MiB)" for number in range(1, len(pids) + 1)) + " |")
            print("| ---: |" + " ---: |" * len(pids))

            def report(served: int) -> None:
                if server.worker_pids() != pids:
                    raise RuntimeError("A gunicorn worker was replaced during the run, so its memory cannot be followed.")

                print(f"| {served:,} | " + " | ".join(f"{resident_kib(pid) / 1024:.1f}" for pid in pids) + " |", flush=True)

            report(0)
            warm_up = run_wrk(url, headers, seconds=5, max_requests=UNCAPPED)
            served = warm_up.requests
            rate = warm_up.requests_per_second
            report(served)
            # wrk's duration is the bound it keeps exactly, so each chunk's duration is sized from the last rate.
            for target in [arguments.requests * number // arguments.chunks for number in range(1, arguments.chunks + 1)]:
                # Chunks are bounded by time alone: when wrk stops a thread at a request cap, its idle
                # connections block sync workers until the worker timeout kills them. A chunk that falls
                # short because the rate dropped is topped up before the report.
                while served < target:
                    seconds = min(arguments.max_seconds, max(5, round((target - served) / rate)))
                    result = run_wrk(url, headers, seconds=seconds, max_requests=UNCAPPED)
                    if result.non_2xx or result.socket_errors:
                        print(f"warning: {result.non_2xx} non-2xx responses and {result.socket_errors} socket errors")

                    served += result.requests
                    rate = result.requests_per_second
                report(served)
    print(f"\nEnd: {load_average()}")


if __name__ == "__main__":
    main()
