"""The installed package version, read from its metadata rather than kept by hand."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    try:
        return version("flask-federation")
    except PackageNotFoundError:  # Running from a source tree that was never installed.
        return "0+unknown"
