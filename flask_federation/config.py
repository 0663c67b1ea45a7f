"""Configuration keys, their defaults and their validation.

Every setting is a ``FEDERATION_*`` key in ``app.config``. :func:`load_settings`
reads each one once, when the extension is initialised, and raises
:class:`ConfigurationError` naming the key when a value has the wrong type or is
out of range, so that a bad deployment fails at start-up and not on the first
request. ``docs/federation/configuration.md`` documents every key listed here.
"""

from __future__ import annotations

import dataclasses
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from limits import parse_many
from limits.strategies import STRATEGIES

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
RATELIMIT_STORAGE_URI = "FEDERATION_RATELIMIT_STORAGE_URI"
RATELIMIT_STORAGE_TIMEOUT = "FEDERATION_RATELIMIT_STORAGE_TIMEOUT"
RATELIMIT_STRATEGY = "FEDERATION_RATELIMIT_STRATEGY"
RATELIMIT_KEY_PREFIX = "FEDERATION_RATELIMIT_KEY_PREFIX"
RATELIMIT_FAIL_CLOSED = "FEDERATION_RATELIMIT_FAIL_CLOSED"
RATELIMIT_POLICIES = "FEDERATION_RATELIMIT_POLICIES"
PROVIDER_RATE_LIMIT = "FEDERATION_PROVIDER_RATE_LIMIT"
DEVELOPER_RATE_LIMIT = "FEDERATION_DEVELOPER_RATE_LIMIT"
ANONYMOUS_RATE_LIMIT = "FEDERATION_ANONYMOUS_RATE_LIMIT"

#: Names of the policies that the audience settings define; FEDERATION_RATELIMIT_POLICIES may not reuse them.
BUILT_IN_POLICIES = {"provider": PROVIDER_RATE_LIMIT, "developer": DEVELOPER_RATE_LIMIT, "anonymous": ANONYMOUS_RATE_LIMIT}

# Policy names appear quoted in the RateLimit header fields, so they exclude quotes, backslashes and spaces.
POLICY_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_KEY_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


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


def parse_rate_limit(key: str, value: Any) -> str:
    """Accept one limit in the notation of the ``limits`` library, such as ``100/minute`` or ``10 per 5 seconds``."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{key} must be a rate limit string such as '100/minute', got {value!r}.")

    try:
        items = parse_many(value)
    except ValueError:
        raise ConfigurationError(
            f"{key} must be a rate limit such as '100/minute' or '10 per 5 seconds', got {value!r}."
        ) from None

    if len(items) != 1:
        raise ConfigurationError(
            f"{key} must hold one limit, got {value!r}. Define one policy per window and stack the decorators."
        )

    if items[0].amount < 1:
        raise ConfigurationError(f"{key} must allow at least one request per window, got {value!r}.")

    return value.strip()


@dataclasses.dataclass(frozen=True)
class PolicySetting:
    """One named rate-limit policy of ``FEDERATION_RATELIMIT_POLICIES``."""

    limit: str
    #: ``None`` leaves the choice to ``FEDERATION_RATELIMIT_FAIL_CLOSED``.
    fail_closed: bool | None = None


def parse_policy_name(key: str, name: Any) -> str:
    if not isinstance(name, str) or not POLICY_NAME_PATTERN.match(name):
        raise ConfigurationError(
            f"{key} has the invalid policy name {name!r}: use 1 to 64 letters, digits or '_.:-', "
            "starting with a letter or digit."
        )

    return name


def parse_rate_limit_policies(key: str, value: Any) -> dict[str, PolicySetting]:
    """Accept a mapping of policy name to a limit string or to ``{"limit": ..., "fail_closed": ...}``.

    A JSON object string is accepted too, for values that come from the environment.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            raise ConfigurationError(
                f"{key} must be a mapping, or a JSON object such as '{{\"writes\": \"10/minute\"}}'."
            ) from None

    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{key} must map policy names to limits such as '100/minute', got {value!r}.")

    policies: dict[str, PolicySetting] = {}
    for name, entry in value.items():
        parse_policy_name(key, name)
        where = f"{key}[{name!r}]"
        if name in BUILT_IN_POLICIES:
            raise ConfigurationError(
                f"{where}: the policy name {name!r} is built in. Set {BUILT_IN_POLICIES[name]} instead, "
                "or choose another name."
            )

        if isinstance(entry, str):
            policies[name] = PolicySetting(parse_rate_limit(where, entry))
            continue

        if not isinstance(entry, Mapping) or "limit" not in entry or set(entry) - {"limit", "fail_closed"}:
            raise ConfigurationError(
                f"{where} must be a limit string, or a mapping with 'limit' and optionally 'fail_closed', got {entry!r}."
            )

        fail_closed = entry.get("fail_closed")
        policies[name] = PolicySetting(
            parse_rate_limit(f"{where}['limit']", entry["limit"]),
            None if fail_closed is None else parse_bool(f"{where}['fail_closed']", fail_closed),
        )

    return policies


def parse_rate_limit_strategy(key: str, value: Any) -> str:
    if value not in STRATEGIES:
        raise ConfigurationError(f"{key} must be one of {', '.join(sorted(STRATEGIES))}, got {value!r}.")

    return str(value)


def parse_storage_uri(key: str, value: Any) -> str:
    """Accept a storage URI of the ``limits`` library; the message never repeats it, as it may hold a password."""
    if not isinstance(value, str) or not urllib.parse.urlparse(value).scheme:
        raise ConfigurationError(
            f"{key} must be a storage URI such as 'memory://' or 'redis://host:6379/0'; the value has no scheme."
        )

    return value


def parse_key_prefix(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _KEY_PREFIX_PATTERN.match(value):
        raise ConfigurationError(f"{key} must be 1 to 64 letters, digits or '_.:-', got {value!r}.")

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
        RATELIMIT_STORAGE_URI,
        "memory://",
        parse_storage_uri,
        "Where rate-limit counters live: `memory://` (one process only), `redis://`, `rediss://`, "
        "`redis+cluster://` or `redis+sentinel://`, as the `limits` library reads them. "
        "Ignored when you pass your own Flask-Limiter `Limiter`.",
    ),
    Setting(
        RATELIMIT_STORAGE_TIMEOUT,
        0.25,
        parse_positive_number,
        "Socket connect and read timeout, in seconds, of a Redis rate-limit storage, so that a stalled Redis "
        "delays a request by about this much at most per limit. Ignored with your own `Limiter`.",
    ),
    Setting(
        RATELIMIT_STRATEGY,
        "sliding-window-counter",
        parse_rate_limit_strategy,
        "Rate-limit algorithm of the `limits` library: `sliding-window-counter`, `fixed-window` or `moving-window`.",
    ),
    Setting(
        RATELIMIT_KEY_PREFIX,
        "federation",
        parse_key_prefix,
        "First part of every rate-limit counter key; give apps that share one storage different prefixes.",
    ),
    Setting(
        RATELIMIT_FAIL_CLOSED,
        False,
        parse_bool,
        "When the rate-limit storage is unreachable, answer 503 `service_unavailable` instead of serving the request "
        "unlimited. A policy's own `fail_closed` option wins.",
    ),
    Setting(
        RATELIMIT_POLICIES,
        {},
        parse_rate_limit_policies,
        "Named rate-limit policies shared by the routes that use them: a mapping (or JSON object) of name to a "
        "limit such as `\"100/minute\"`, or to `{\"limit\": ..., \"fail_closed\": true}`.",
    ),
    Setting(
        PROVIDER_RATE_LIMIT,
        "600/minute",
        parse_rate_limit,
        "Limit of the `provider` policy: each provider's calls to rate-limited routes without a policy of their own.",
    ),
    Setting(
        DEVELOPER_RATE_LIMIT,
        "600/minute",
        parse_rate_limit,
        "Limit of the `developer` policy: each developer's calls to rate-limited routes without a policy of their own.",
    ),
    Setting(
        ANONYMOUS_RATE_LIMIT,
        "60/minute",
        parse_rate_limit,
        "Limit of the `anonymous` policy: calls without a credential to rate-limited host routes, per client address.",
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
