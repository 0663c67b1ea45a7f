"""Configuration keys, their defaults and their validation.

Every setting is a ``FEDERATION_*`` key in ``app.config``. :func:`load_settings`
reads each one once, when the extension is initialised, and raises
:class:`ConfigurationError` naming the key when a value has the wrong type or is
out of range, so that a bad deployment fails at start-up and not on the first
request. ``docs/federation/configuration.md`` documents every key listed here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

PREFIX = "FEDERATION_"

ENABLED = "FEDERATION_ENABLED"
URL_PREFIX = "FEDERATION_URL_PREFIX"
CURSOR_SECRET = "FEDERATION_CURSOR_SECRET"  # noqa: S105 (a key name, not a secret)
DEFAULT_PAGE_SIZE = "FEDERATION_DEFAULT_PAGE_SIZE"
MAX_PAGE_SIZE = "FEDERATION_MAX_PAGE_SIZE"
MAX_BODY_BYTES = "FEDERATION_MAX_BODY_BYTES"
CREATE_TABLES = "FEDERATION_CREATE_TABLES"
TRUST_REQUEST_ID = "FEDERATION_TRUST_REQUEST_ID"
LEGACY_AUTH_ENABLED = "FEDERATION_LEGACY_AUTH_ENABLED"
OIDC_ENABLED = "FEDERATION_OIDC_ENABLED"
API_DOCS = "FEDERATION_API_DOCS"

#: Values of FEDERATION_API_DOCS: the interactive reference to serve at {prefix}/docs, or none.
API_DOCS_MODES = ("swagger", "off")


class ConfigurationError(ValueError):
    """A ``FEDERATION_*`` setting has a wrong type or value."""


Parser = Callable[[str, Any], Any]


def parse_bool(key: str, value: Any) -> bool:
    """Accept a bool, or the strings ``true``/``false``/``1``/``0`` from the environment."""
    if isinstance(value, bool):
        return value

    if isinstance(value, str) and value.strip().lower() in {"true", "1", "yes", "on"}:
        return True

    if isinstance(value, str) and value.strip().lower() in {"false", "0", "no", "off", ""}:
        return False

    raise ConfigurationError(f"{key} must be true or false, got {value!r}.")


def parse_positive_int(key: str, value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)

    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{key} must be a positive integer, got {value!r}.")

    return value


def parse_positive_number(key: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass

    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigurationError(f"{key} must be a positive number, got {value!r}.")

    return float(value)


def parse_optional_str(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return None

    if not isinstance(value, str):
        raise ConfigurationError(f"{key} must be a string, got {type(value).__name__}.")

    return value


def parse_str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{key} must be a non-empty string, got {value!r}.")

    return value


def parse_str_list(key: str, value: Any) -> tuple[str, ...]:
    """Accept a list of strings, or one comma-separated string from the environment."""
    if isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]

    if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(item, str) for item in value):
        raise ConfigurationError(f"{key} must be a list of strings, got {value!r}.")

    return tuple(value)


def parse_choice(*choices: str) -> Parser:
    """Return a parser that accepts one of ``choices``, compared without case or surrounding spaces."""

    def parse(key: str, value: Any) -> str:
        normalised = value.strip().lower() if isinstance(value, str) else value
        if normalised not in choices:
            raise ConfigurationError(f"{key} must be one of {', '.join(choices)}, got {value!r}.")
        return str(normalised)

    return parse


_URL_PREFIX_PATTERN = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


def parse_url_prefix(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _URL_PREFIX_PATTERN.match(value):
        raise ConfigurationError(
            f"{key} must be a path such as '/federation' that starts with '/', "
            f"does not end with '/' and contains only letters, digits and '._~-', got {value!r}."
        )

    return value


@dataclasses.dataclass(frozen=True)
class Setting:
    """One configuration key: its default, how it is validated and what it does."""

    key: str
    default: Any
    parse: Parser
    doc: str

    @property
    def field(self) -> str:
        return self.key.removeprefix(PREFIX).lower()


#: Every setting the extension reads, in the order the reference page lists them.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        ENABLED,
        False,
        parse_bool,
        "Serve the federation routes. When false they answer 404 `federation_disabled`; the decorators keep working on host routes.",
    ),
    Setting(URL_PREFIX, "/federation", parse_url_prefix, "Path under which all federation routes are mounted."),
    Setting(
        CURSOR_SECRET,
        None,
        parse_optional_str,
        "Key that signs pagination cursors. Defaults to the app's `SECRET_KEY`.",
    ),
    Setting(DEFAULT_PAGE_SIZE, 20, parse_positive_int, "Page size of list routes when the request gives no `limit`."),
    Setting(
        MAX_PAGE_SIZE,
        100,
        parse_positive_int,
        "Largest `limit` a list route accepts; larger values are a validation error.",
    ),
    Setting(
        MAX_BODY_BYTES,
        64 * 1024,
        parse_positive_int,
        "Largest request body, in bytes, the federation routes read; larger bodies get 413 `payload_too_large`.",
    ),
    Setting(
        CREATE_TABLES,
        False,
        parse_bool,
        "Create the federation tables when the extension starts. For demos and tests; production uses migrations.",
    ),
    Setting(
        TRUST_REQUEST_ID, True, parse_bool, "Echo a valid incoming `X-Request-ID` instead of always generating one."
    ),
    Setting(LEGACY_AUTH_ENABLED, True, parse_bool, "Accept legacy API keys (`ffp_...`, `ffd_...`)."),
    Setting(OIDC_ENABLED, False, parse_bool, "Accept OIDC bearer access tokens and browser sessions."),
    Setting(
        API_DOCS,
        "swagger",
        parse_choice(*API_DOCS_MODES),
        "Interactive API reference at `{prefix}/docs`: `swagger` serves Swagger UI from the installed "
        "`flask-swagger-ui` package (no CDN), `off` answers 404 there. `{prefix}/openapi.json` is served either way.",
    ),
)


@dataclasses.dataclass(frozen=True)
class FederationSettings:
    """The validated ``FEDERATION_*`` values of one app, read once by ``init_app``."""

    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def enabled(self) -> bool:
        return bool(self.values["enabled"])

    @property
    def url_prefix(self) -> str:
        return str(self.values["url_prefix"])


def load_settings(config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> FederationSettings:
    """Validate every ``FEDERATION_*`` key of ``config`` and return the settings.

    ``overrides`` (constructor arguments) win over ``config``, which wins over the
    defaults. Unknown ``FEDERATION_*`` keys are rejected, because a misspelt key
    would otherwise silently leave its default in force.
    """
    merged = dict(config)
    merged.update(overrides or {})
    known = {setting.key for setting in SETTINGS}
    unknown = sorted(key for key in merged if key.startswith(PREFIX) and key not in known)
    if unknown:
        raise ConfigurationError(
            f"Unknown setting {unknown[0]}: check its spelling against docs/federation/configuration.md."
        )

    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = merged.get(setting.key, setting.default)
        values[setting.field] = setting.parse(setting.key, raw)

    if values["default_page_size"] > values["max_page_size"]:
        raise ConfigurationError(
            f"{DEFAULT_PAGE_SIZE} ({values['default_page_size']}) must not exceed "
            f"{MAX_PAGE_SIZE} ({values['max_page_size']})."
        )

    if not values["legacy_auth_enabled"] and not values["oidc_enabled"]:
        raise ConfigurationError(
            f"{LEGACY_AUTH_ENABLED} and {OIDC_ENABLED} are both false, so no credential could authenticate. "
            "Enable at least one."
        )

    return FederationSettings(values)
