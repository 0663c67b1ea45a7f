"""Driving Debian's headless Chromium through its command line: DOM dumps, screenshots, console lines.

No browser is downloaded: the tests use the ``chromium`` binary on PATH, or skip
(fail under ``CI=true``) without it.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

from .services import skip_or_fail

#: Flags that keep the browser off the network except for the URL it is given.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

# Chromium prints each console message of the page to stderr with --enable-logging=stderr.
_CONSOLE_LINE = re.compile(r":CONSOLE[^\]]*\]\s*(.*)$")


def require_chromium() -> str:
    """Return the path of the chromium binary, or skip (fail under CI) naming the install command."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        skip_or_fail("chromium is not installed; install it with: apt-get update && apt-get install -y chromium")
    assert binary is not None
    return binary


@dataclasses.dataclass(frozen=True)
class PageLoad:
    """What one headless page load produced: the DOM (when dumped) and the console messages."""

    dom: str
    console: tuple[str, ...]


def load_page(
    binary: str,
    url: str,
    profile_dir: Path,
    *,
    screenshot: Path | None = None,
    window_size: str = "1280,1600",
    budget_ms: int = 15000,
) -> PageLoad:
    """Load ``url`` in a fresh profile; dump the DOM, or save a PNG screenshot when ``screenshot`` is given.

    ``--virtual-time-budget`` lets the page's scripts and its fetches settle before the dump.
    """
    profile_dir.mkdir(parents=True, exist_ok=True)
    command = [
        binary,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile_dir}",
        "--enable-logging=stderr",
        "--v=0",
        f"--virtual-time-budget={budget_ms}",
        f"--window-size={window_size}",
    ]
    command.append(f"--screenshot={screenshot}" if screenshot is not None else "--dump-dom")
    command.append(url)
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"chromium exited with {result.returncode}: {result.stderr[-2000:]}"
    console = tuple(match.group(1) for line in result.stderr.splitlines() if (match := _CONSOLE_LINE.search(line)))
    return PageLoad(dom=result.stdout, console=console)
