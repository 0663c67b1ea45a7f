"""Run the smoke checks: ``python -m flask_federation.smoke --base-url URL``."""

from __future__ import annotations

from .command import smoke_command

if __name__ == "__main__":
    smoke_command(prog_name="python -m flask_federation.smoke")
