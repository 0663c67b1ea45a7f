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
IDEMPOTENCY_STORE = "FEDERATION_IDEMPOTENCY_STORE"
IDEMPOTENCY_TTL = "FEDERATION_IDEMPOTENCY_TTL"
IDEMPOTENCY_LEASE = "FEDERATION_IDEMPOTENCY_LEASE"
IDEMPOTENCY_REDIS_PREFIX = "FEDERATION_IDEMPOTENCY_REDIS_PREFIX"


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


_URL_PREFIX_PATTERN = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


def parse_url_prefix(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _URL_PREFIX_PATTERN.match(value):
        raise ConfigurationError(
            f"{key} must be a path such as '/federation' that starts with '/', "
            f"does not end with '/' and contains only letters, digits and '._~-', got {value!r}."
        )

    return value


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def parse_store(key: str, value: Any) -> str:
    """Accept ``sql`` or a Redis URL (``redis://``, ``rediss://``, ``unix://``)."""
    if value == "sql" or (isinstance(value, str) and value.startswith(_REDIS_SCHEMES)):
        return str(value)

    # A URL with '@' may carry a password, which must not reach the logs.
    displayed = value if not isinstance(value, str) or "@" not in value else "<a URL with credentials>"
    raise ConfigurationError(
        f"{key} must be 'sql' or a Redis URL starting with redis://, rediss:// or unix://, got {displayed!r}."
    )


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
        IDEMPOTENCY_STORE,
        "sql",
        parse_store,
        "Where `with_idempotency_required` keeps keys and stored responses: `sql` (the extension's database, "
        "table `federation_idempotency_keys`) or a Redis URL such as `redis://127.0.0.1:6379/0`. "
        "Redis socket timeouts default to 1 second; set `socket_timeout` and `socket_connect_timeout` in the URL "
        "query to change them.",
    ),
    Setting(
        IDEMPOTENCY_TTL,
        24 * 60 * 60,
        parse_positive_number,
        "Seconds an idempotency key and its stored response are kept after the request completes. "
        "An unfinished claim expires this long after it was made.",
    ),
    Setting(
        IDEMPOTENCY_LEASE,
        30,
        parse_positive_number,
        "Seconds a request holds its idempotency key while its handler runs. Repeats in that time get 409 "
        "`idempotency_key_in_use`; after it, a claim that never finished gets 409 `idempotency_outcome_unknown`. "
        "Must be shorter than `FEDERATION_IDEMPOTENCY_TTL`.",
    ),
    Setting(
        IDEMPOTENCY_REDIS_PREFIX,
        "federation:idempotency:",
        parse_str,
        "Prefix of the Redis keys of the Redis idempotency store.",
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

    if values["idempotency_lease"] >= values["idempotency_ttl"]:
        raise ConfigurationError(
            f"{IDEMPOTENCY_LEASE} ({values['idempotency_lease']}) must be shorter than "
            f"{IDEMPOTENCY_TTL} ({values['idempotency_ttl']}), or a claim would expire before its lease."
        )

    if not values["legacy_auth_enabled"] and not values["oidc_enabled"]:
        raise ConfigurationError(
            f"{LEGACY_AUTH_ENABLED} and {OIDC_ENABLED} are both false, so no credential could authenticate. "
            "Enable at least one."
        )

    return FederationSettings(values)
