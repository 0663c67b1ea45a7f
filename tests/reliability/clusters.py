"""A PostgreSQL cluster of the test's own, which it may stop and restart without touching the shared server."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..servers import free_port
from ..services import skip_or_fail


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(path.split("/")[4]))
    return Path(found[-1]).parent if found else None


class OwnPostgres:
    """An initdb'd cluster in a temporary directory, served on a free loopback port.

    PostgreSQL refuses to run as root, so under root every command runs as the
    ``postgres`` system user through ``runuser``, and the directory belongs to it.
    """

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.directory = Path(tempfile.mkdtemp(prefix="federation-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.as_root = os.geteuid() == 0

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        subprocess.run([*prefix, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def initialise(self) -> None:
        if self.as_root:
            shutil.chown(self.directory, user="postgres", group="postgres")

        initdb = str(self.bin_dir / "initdb")
        self._run(initdb, "-D", str(self.data), "--username=postgres", "--auth=trust", "--encoding=UTF8", "--no-sync")

    def start(self) -> None:
        # fsync off: the cluster lives for one test, and a crash of the machine loses nothing of value.
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
        log = str(self.directory / "server.log")
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running():
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop("immediate")

        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """Yield a started cluster of this test alone; stop and delete it afterwards."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        skip_or_fail("PostgreSQL server binaries are not installed under /usr/lib/postgresql, so no own cluster")

    assert bin_dir is not None
    cluster = OwnPostgres(bin_dir)
    try:
        cluster.initialise()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
