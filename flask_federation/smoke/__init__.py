"""The smoke runner: checks a deployed federation API from outside, over HTTP, with ``requests``.

Run it as ``flask federation smoke --base-url URL`` or
``python -m flask_federation.smoke --base-url URL``; both are :data:`smoke_command`.
"""

from __future__ import annotations

from .checks import CheckResult, SmokeConfig, run_smoke
from .command import smoke_command

__all__ = ["CheckResult", "SmokeConfig", "run_smoke", "smoke_command"]
