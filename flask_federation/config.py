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
from urllib.parse import urlsplit

from limits import parse_many
from limits.strategies import STRATEGIES

from .entitlements import CATALOGUE
from .oidc.tokens import ASYMMETRIC_ALGORITHMS, DEFAULT_ALGORITHMS
from .redirects import is_local_path

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
CREDENTIAL_CACHE_SECONDS = "FEDERATION_CREDENTIAL_CACHE_SECONDS"
CREDENTIAL_CACHE_SIZE = "FEDERATION_CREDENTIAL_CACHE_SIZE"

#: Maximum accepted FEDERATION_CREDENTIAL_CACHE_SECONDS, because it is how long a revoked key may keep working in
#: other processes. Longer would not help: an entry is read again once the key's last_used_at is a minute old.
MAX_CREDENTIAL_CACHE_SECONDS = 60
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
OIDC_ISSUER = "FEDERATION_OIDC_ISSUER"
OIDC_PROVIDER_AUDIENCE = "FEDERATION_OIDC_PROVIDER_AUDIENCE"
OIDC_DEVELOPER_AUDIENCE = "FEDERATION_OIDC_DEVELOPER_AUDIENCE"
OIDC_ALGORITHMS = "FEDERATION_OIDC_ALGORITHMS"
OIDC_LEEWAY_SECONDS = "FEDERATION_OIDC_LEEWAY_SECONDS"
OIDC_MAX_TOKEN_BYTES = "FEDERATION_OIDC_MAX_TOKEN_BYTES"  # noqa: S105 (a key name, not a secret)
OIDC_JWKS_TTL_SECONDS = "FEDERATION_OIDC_JWKS_TTL_SECONDS"
OIDC_JWKS_REFETCH_COOLDOWN_SECONDS = "FEDERATION_OIDC_JWKS_REFETCH_COOLDOWN_SECONDS"
OIDC_HTTP_TIMEOUT_SECONDS = "FEDERATION_OIDC_HTTP_TIMEOUT_SECONDS"
OIDC_PROVIDER_CLAIM = "FEDERATION_OIDC_PROVIDER_CLAIM"
OIDC_DEVELOPER_CLAIM = "FEDERATION_OIDC_DEVELOPER_CLAIM"
OIDC_SCOPE_MAP = "FEDERATION_OIDC_SCOPE_MAP"
OIDC_REQUIRE_HTTPS = "FEDERATION_OIDC_REQUIRE_HTTPS"
OIDC_LOGIN_ENABLED = "FEDERATION_OIDC_LOGIN_ENABLED"
OIDC_CLIENT_ID = "FEDERATION_OIDC_CLIENT_ID"
OIDC_CLIENT_SECRET = "FEDERATION_OIDC_CLIENT_SECRET"  # noqa: S105 (a key name, not a secret)
OIDC_SESSION_LIFETIME_SECONDS = "FEDERATION_OIDC_SESSION_LIFETIME_SECONDS"
OIDC_POST_LOGOUT_REDIRECT_URI = "FEDERATION_OIDC_POST_LOGOUT_REDIRECT_URI"
OIDC_DEFAULT_NEXT = "FEDERATION_OIDC_DEFAULT_NEXT"
AUTH_USAGE_STORAGE_URI = "FEDERATION_AUTH_USAGE_STORAGE_URI"
AUTH_USAGE_KEY_PREFIX = "FEDERATION_AUTH_USAGE_KEY_PREFIX"

#: Settings whose values are secrets: never shown by ``repr`` or in error messages.
SECRET_KEYS = frozenset({CURSOR_SECRET, OIDC_CLIENT_SECRET})
AUDIT_ENABLED = "FEDERATION_AUDIT_ENABLED"
AUDIT_REDACT_KEYS = "FEDERATION_AUDIT_REDACT_KEYS"
AUDIT_HMAC_KEY = "FEDERATION_AUDIT_HMAC_KEY"
AUDIT_RETENTION_DAYS = "FEDERATION_AUDIT_RETENTION_DAYS"
AUDIT_BATCH_READS = "FEDERATION_AUDIT_BATCH_READS"
AUDIT_BATCH_SECONDS = "FEDERATION_AUDIT_BATCH_SECONDS"
AUDIT_BATCH_LIMIT = "FEDERATION_AUDIT_BATCH_LIMIT"

#: Shortest accepted audit HMAC key; 32 characters of a random hex or base64 key carry at least 128 bits.
MIN_AUDIT_HMAC_KEY_LENGTH = 32
API_DOCS = "FEDERATION_API_DOCS"

#: Values of FEDERATION_API_DOCS: the interactive reference to serve at {prefix}/docs, or none.
API_DOCS_MODES = ("swagger", "off")
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


def _parse_int(key: str, value: Any, minimum: int, expected: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)

    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{key} must be {expected}, got {value!r}.")

    return value


def _parse_number(key: str, value: Any, *, allow_zero: bool, expected: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass

    valid = not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value < float("inf")
    if not valid or (value == 0 and not allow_zero):
        raise ConfigurationError(f"{key} must be {expected}, got {value!r}.")

    return float(value)


def parse_positive_int(key: str, value: Any) -> int:
    return _parse_int(key, value, 1, "a positive integer")


def parse_non_negative_int(key: str, value: Any) -> int:
    return _parse_int(key, value, 0, "an integer of 0 or more")


def parse_positive_number(key: str, value: Any) -> float:
    return _parse_number(key, value, allow_zero=False, expected="a positive number")


def parse_non_negative_number(key: str, value: Any) -> float:
    return _parse_number(key, value, allow_zero=True, expected="a number of 0 or more")


def parse_credential_cache_seconds(key: str, value: Any) -> float:
    seconds = parse_non_negative_number(key, value)
    if seconds > MAX_CREDENTIAL_CACHE_SECONDS:
        raise ConfigurationError(
            f"{key} must be at most {MAX_CREDENTIAL_CACHE_SECONDS}, got {value!r}. A revoked API key may keep "
            "working this long in other worker processes, so choose a shorter time, or 0 to turn the cache off."
        )

    return seconds


def parse_optional_str(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return None

    if not isinstance(value, str):
        raise ConfigurationError(f"{key} must be a string, got {type(value).__name__}.")

    return value


def parse_optional_positive_int(key: str, value: Any) -> int | None:
    if value is None or value == "":
        return None

    return parse_positive_int(key, value)


def parse_hmac_key(key: str, value: Any) -> str | None:
    secret = parse_optional_str(key, value)
    if secret is not None and len(secret) < MIN_AUDIT_HMAC_KEY_LENGTH:
        raise ConfigurationError(
            f"{key} must be at least {MIN_AUDIT_HMAC_KEY_LENGTH} characters long, got {len(secret)}. "
            "Generate one with: python -c 'import secrets; print(secrets.token_hex(32))'."
        )

    return secret


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


def parse_optional_secret(key: str, value: Any) -> str | None:
    """Like :func:`parse_optional_str`, but the message never repeats the value."""
    if value is None or value == "":
        return None

    if not isinstance(value, str):
        raise ConfigurationError(f"{key} must be a string, got a {type(value).__name__}.")

    return value


def parse_optional_url(key: str, value: Any) -> str | None:
    """Accept an absolute ``http`` or ``https`` URL; whether plain http is allowed is checked later."""
    url = parse_optional_str(key, value)
    if url is None:
        return None

    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc or any(character.isspace() for character in url):
        raise ConfigurationError(f"{key} must be an absolute http(s) URL such as 'https://login.example.com', got {url!r}.")

    return url


def parse_algorithms(key: str, value: Any) -> tuple[str, ...]:
    algorithms = parse_str_list(key, value)
    if not algorithms:
        raise ConfigurationError(f"{key} is empty. Allow at least one asymmetric algorithm such as RS256.")

    for name in algorithms:
        if name not in ASYMMETRIC_ALGORITHMS:
            raise ConfigurationError(
                f"{key} contains {name!r}, which is not an asymmetric JWS algorithm. "
                f"Use names from: {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}."
            )

    return algorithms


def parse_scope_map(key: str, value: Any) -> dict[str, tuple[str, ...]]:
    """Accept a mapping of OAuth scope to entitlement name(s), or that mapping as a JSON object string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigurationError(
                f'{key} must be a JSON object such as {{"partner.read": ["tenants:read"]}}, got {value!r}.'
            ) from None

    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{key} must map scope names to entitlement names, got {value!r}.")

    known = frozenset().union(*CATALOGUE.values())
    scope_map: dict[str, tuple[str, ...]] = {}
    for scope, target in value.items():
        entitlements = (target,) if isinstance(target, str) else target
        if (
            not isinstance(scope, str)
            or not scope
            or not isinstance(entitlements, (list, tuple))
            or not all(isinstance(name, str) for name in entitlements)
        ):
            raise ConfigurationError(
                f"{key} must map each scope name to an entitlement name or a list of them; "
                f"the entry {scope!r}: {target!r} is neither."
            )

        unknown = sorted(set(entitlements) - known)
        if unknown:
            raise ConfigurationError(
                f"{key} maps scope {scope!r} to the unknown entitlement {unknown[0]!r}. "
                f"Use one or more of: {', '.join(sorted(known))}."
            )

        scope_map[scope] = tuple(entitlements)

    return scope_map


def parse_local_path(key: str, value: Any) -> str:
    if not isinstance(value, str) or not is_local_path(value):
        raise ConfigurationError(f"{key} must be a local path such as '/' or '/dashboard', got {value!r}.")

    return value


_STORAGE_SCHEMES = ("memory", "redis", "rediss", "unix")


def parse_optional_redis_uri(key: str, value: Any) -> str | None:
    uri = parse_optional_str(key, value)
    if uri is not None and urlsplit(uri).scheme not in _STORAGE_SCHEMES:
        raise ConfigurationError(
            f"{key} must be a redis://, rediss://, unix:// or memory:// URI, got a {urlsplit(uri).scheme!r} URI."
        )

    return uri
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
    if not isinstance(value, str) or not _URL_PREFIX_PATTERN.fullmatch(value):
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
    if not isinstance(name, str) or not POLICY_NAME_PATTERN.fullmatch(name):
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
    if not isinstance(value, str) or not _KEY_PREFIX_PATTERN.fullmatch(value):
        raise ConfigurationError(f"{key} must be 1 to 64 letters, digits or '_.:-', got {value!r}.")

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
        return field_name(self.key)


def field_name(key: str) -> str:
    """Return the attribute name of ``key`` on :class:`FederationSettings`: ``FEDERATION_MAX_PAGE_SIZE`` is ``max_page_size``."""
    return key.removeprefix(PREFIX).lower()


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
    Setting(
        CREDENTIAL_CACHE_SECONDS,
        0,
        parse_credential_cache_seconds,
        "Seconds each worker process reuses an API key it verified, without the credential query (at most 60; "
        "0 turns the cache off). The secret and the expiry are still checked on every request. An entry is also read "
        "again once the key's `last_used_at` is a minute old. Revoking a key "
        "or changing its entitlements through `flask_federation.admin` evicts it in the calling process only; "
        "other processes, and all of them for changes made by the CLI or in SQL, keep accepting the key as it was "
        "for up to this long.",
    ),
    Setting(
        CREDENTIAL_CACHE_SIZE,
        10_000,
        parse_positive_int,
        "Maximum number of API keys each worker process caches when `FEDERATION_CREDENTIAL_CACHE_SECONDS` is on; the least "
        "recently used key is dropped first.",
    ),
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
    Setting(
        OIDC_ENABLED,
        False,
        parse_bool,
        "Accept OIDC bearer access tokens (and browser sessions with `FEDERATION_OIDC_LOGIN_ENABLED`).",
    ),
    Setting(
        OIDC_ISSUER,
        None,
        parse_optional_url,
        "Issuer URL of the OpenID provider, exactly as its discovery document names it. Required with OIDC.",
    ),
    Setting(
        OIDC_PROVIDER_AUDIENCE,
        None,
        parse_optional_str,
        "`aud` that provider access tokens must carry (a resource identifier such as `urn:federation:provider`). Required with OIDC.",
    ),
    Setting(
        OIDC_DEVELOPER_AUDIENCE,
        None,
        parse_optional_str,
        "`aud` that developer access tokens must carry; must differ from the provider audience. Required with OIDC.",
    ),
    Setting(
        OIDC_ALGORITHMS,
        DEFAULT_ALGORITHMS,
        parse_algorithms,
        "JWS algorithms accepted on access and ID tokens. Asymmetric only: `none` and HMAC (`HS*`) are rejected.",
    ),
    Setting(
        OIDC_LEEWAY_SECONDS,
        60,
        parse_non_negative_int,
        "Clock skew, in seconds, allowed on the `exp`, `nbf` and `iat` of tokens.",
    ),
    Setting(
        OIDC_MAX_TOKEN_BYTES,
        8192,
        parse_positive_int,
        "Longest bearer access token, in bytes, that is parsed; longer tokens get 401.",
    ),
    Setting(
        OIDC_JWKS_TTL_SECONDS,
        300,
        parse_positive_number,
        "Seconds the issuer's signing keys (JWKS) are cached before they are fetched again.",
    ),
    Setting(
        OIDC_JWKS_REFETCH_COOLDOWN_SECONDS,
        30,
        parse_non_negative_number,
        "Minimum seconds between two fetches of the JWKS or discovery document after an unknown key id or a "
        "failure. Also the `Retry-After` of a 503 while the provider is unreachable.",
    ),
    Setting(
        OIDC_HTTP_TIMEOUT_SECONDS,
        3.0,
        parse_positive_number,
        "Timeout, in seconds, of each HTTP request to the OpenID provider (discovery, JWKS, token endpoint).",
    ),
    Setting(
        OIDC_PROVIDER_CLAIM,
        "provider_id",
        parse_str,
        "Token claim that holds the provider's public id (`prv_...`).",
    ),
    Setting(
        OIDC_DEVELOPER_CLAIM,
        "developer_id",
        parse_str,
        "Token claim that holds the developer's public id (`dev_...`).",
    ),
    Setting(
        OIDC_SCOPE_MAP,
        {name: name for name in sorted(frozenset().union(*CATALOGUE.values()))},
        parse_scope_map,
        "Maps OAuth scopes to entitlements (a name or a list of names); a dict or a JSON object string. Scopes not listed grant nothing.",
    ),
    Setting(
        OIDC_REQUIRE_HTTPS,
        True,
        parse_bool,
        "Require `https` for the issuer, every endpoint it publishes and the post-logout redirect URI. Set false only for local testing.",
    ),
    Setting(
        OIDC_LOGIN_ENABLED,
        False,
        parse_bool,
        "Serve the browser login routes under `{prefix}/oidc` and accept their session on the auth guards. Needs the client id and secret.",
    ),
    Setting(OIDC_CLIENT_ID, None, parse_optional_str, "OAuth client id of this app at the OpenID provider, for browser login."),
    Setting(
        OIDC_CLIENT_SECRET,
        None,
        parse_optional_secret,
        "OAuth client secret for browser login. Never logged; keep it out of source control.",
    ),
    Setting(
        OIDC_SESSION_LIFETIME_SECONDS,
        3600,
        parse_positive_int,
        "Seconds a browser login stays valid; after that the guards answer 401 and the user logs in again.",
    ),
    Setting(
        OIDC_POST_LOGOUT_REDIRECT_URI,
        None,
        parse_optional_url,
        "Absolute URL, registered at the provider, where it sends the browser after logout. Unset: the provider's own page.",
    ),
    Setting(
        OIDC_DEFAULT_NEXT,
        "/",
        parse_local_path,
        "Local path the browser goes to after login or logout when `next` is missing or not a local path.",
    ),
    Setting(
        AUTH_USAGE_STORAGE_URI,
        None,
        parse_optional_redis_uri,
        "Where recent requests per auth method are counted for diagnostics: a `redis://` URI shared by all "
        "workers, or unset/`memory://` for per-process counts.",
    ),
    Setting(
        AUTH_USAGE_KEY_PREFIX,
        "federation:auth-usage",
        parse_str,
        "Prefix of the Redis keys of those counts.",
    ),
    Setting(
        AUDIT_ENABLED,
        True,
        parse_bool,
        "Record an audit event for every federation request, every audited host route and every provisioning change.",
    ),
    Setting(
        AUDIT_REDACT_KEYS,
        (),
        parse_str_list,
        "Extra key names whose values audit events replace with `[REDACTED]`, matched like the built-in ones "
        "(case-insensitive substring, ignoring `-` and `_`).",
    ),
    Setting(
        AUDIT_HMAC_KEY,
        None,
        parse_hmac_key,
        "Key (at least 32 characters) that turns the audit hash chain into HMAC-SHA256, so that database access "
        "alone cannot recompute it. Unset: plain SHA-256.",
    ),
    Setting(
        AUDIT_RETENTION_DAYS,
        None,
        parse_optional_positive_int,
        "Days of audit events that `flask federation audit purge` keeps when run without `--older-than-days`. "
        "Unset: purge needs the option.",
    ),
    Setting(
        AUDIT_BATCH_READS,
        False,
        parse_bool,
        "Write the events of reads, denials and failed requests from a background thread in batches, instead of "
        "one commit per request. Faster, but such an event is committed up to `FEDERATION_AUDIT_BATCH_SECONDS` "
        "after its response, carries that time, and is lost if the worker process is killed before then. "
        "Events of writes always commit with the write.",
    ),
    Setting(
        AUDIT_BATCH_SECONDS,
        0.1,
        parse_positive_number,
        "Maximum seconds a batched audit event waits before it is written.",
    ),
    Setting(
        AUDIT_BATCH_LIMIT,
        10_000,
        parse_positive_int,
        "Batched audit events that may wait per worker process, for instance while the database is down. "
        "When that many wait, requests write their events themselves again, as without batching.",
    ),
    Setting(
        API_DOCS,
        "swagger",
        parse_choice(*API_DOCS_MODES),
        "Interactive API reference at `{prefix}/docs`: `swagger` serves Swagger UI from the installed "
        "`flask-swagger-ui` package (no CDN), `off` answers 404 there. `{prefix}/openapi.json` is served either way.",
    ),
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

    def __repr__(self) -> str:
        secret_fields = {setting.field for setting in SETTINGS if setting.key in SECRET_KEYS}
        shown = {
            name: ("<redacted>" if name in secret_fields and value is not None else value)
            for name, value in self.values.items()
        }
        return f"FederationSettings({shown!r})"

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

    _check_oidc_settings(values)
    return FederationSettings(values)


def _check_oidc_settings(values: Mapping[str, Any]) -> None:
    """Raise naming the key when the OIDC settings contradict each other."""
    if values["oidc_login_enabled"] and not values["oidc_enabled"]:
        raise ConfigurationError(f"{OIDC_LOGIN_ENABLED} is true but {OIDC_ENABLED} is false. Enable OIDC or turn login off.")

    if not values["oidc_enabled"]:
        return

    for key in (OIDC_ISSUER, OIDC_PROVIDER_AUDIENCE, OIDC_DEVELOPER_AUDIENCE):
        if values[field_name(key)] is None:
            raise ConfigurationError(f"{key} is not set, but {OIDC_ENABLED} is true. Set it, or disable OIDC.")

    if values["oidc_provider_audience"] == values["oidc_developer_audience"]:
        raise ConfigurationError(
            f"{OIDC_PROVIDER_AUDIENCE} and {OIDC_DEVELOPER_AUDIENCE} are both {values['oidc_provider_audience']!r}. "
            "Give each audience its own value, so that a provider token cannot be used on developer routes."
        )

    if values["oidc_require_https"]:
        for key in (OIDC_ISSUER, OIDC_POST_LOGOUT_REDIRECT_URI):
            url = values[field_name(key)]
            if url is not None and urlsplit(url).scheme != "https":
                raise ConfigurationError(
                    f"{key} must be an https URL, got {url!r}. "
                    f"For local testing only, set {OIDC_REQUIRE_HTTPS}=false to allow http."
                )

    if values["oidc_login_enabled"]:
        for key in (OIDC_CLIENT_ID, OIDC_CLIENT_SECRET):
            if values[field_name(key)] is None:
                raise ConfigurationError(
                    f"{key} is not set, but {OIDC_LOGIN_ENABLED} is true. Set it to the client registered at the provider."
                )
