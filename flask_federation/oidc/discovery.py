"""OpenID Connect Discovery: fetch and check an issuer's provider metadata."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from .errors import IdentityProviderUnavailable, OIDCConfigurationError

__all__ = ["ProviderMetadata", "fetch_json_document", "fetch_provider_metadata"]

logger = logging.getLogger("flask_federation.oidc")

# Discovery documents and JWK sets are a few kilobytes. The cap keeps a
# misbehaving or hostile endpoint from making a worker buffer an unbounded body.
MAX_DOCUMENT_BYTES = 1024 * 1024

WELL_KNOWN_PATH = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class ProviderMetadata:
    """The subset of an OpenID provider's metadata that the package uses."""

    issuer: str
    jwks_uri: str
    authorization_endpoint: str
    token_endpoint: str
    end_session_endpoint: str | None = None
    userinfo_endpoint: str | None = None


def fetch_provider_metadata(
    issuer: str,
    *,
    timeout: float,
    session: requests.Session | None = None,
) -> ProviderMetadata:
    """Fetch ``{issuer}/.well-known/openid-configuration`` and check it.

    The ``issuer`` in the document must equal the configured ``issuer``
    character for character (OpenID Connect Discovery 1.0, section 4.3), so a
    trailing slash on one side only is a mismatch.

    Raises ``IdentityProviderUnavailable`` on a network error, a timeout or an
    HTTP 5xx or 429 response, and ``OIDCConfigurationError`` on any other non-200
    status, a body that is not a JSON object, an issuer mismatch, or a missing
    or non-URL endpoint.
    """
    if not issuer:
        raise OIDCConfigurationError("The OIDC issuer is empty. Set it to the identity provider's issuer URL.")
    _check_url("issuer", issuer)

    # Discovery 1.0 section 4: drop a terminating "/" before appending the path.
    url = issuer.rstrip("/") + WELL_KNOWN_PATH
    if session is None:
        with requests.Session() as own_session:
            document = fetch_json_document(own_session, url, timeout=timeout, description="OIDC discovery document")
    else:
        document = fetch_json_document(session, url, timeout=timeout, description="OIDC discovery document")

    published_issuer = document.get("issuer")
    if published_issuer != issuer:
        raise OIDCConfigurationError(
            f"The discovery document at {url} names issuer {published_issuer!r}, "
            f"but the configured issuer is {issuer!r}. They must match exactly; fix the configured issuer."
        )

    metadata = ProviderMetadata(
        issuer=issuer,
        jwks_uri=_required_url(document, "jwks_uri", url),
        authorization_endpoint=_required_url(document, "authorization_endpoint", url),
        token_endpoint=_required_url(document, "token_endpoint", url),
        end_session_endpoint=_optional_url(document, "end_session_endpoint", url),
        userinfo_endpoint=_optional_url(document, "userinfo_endpoint", url),
    )
    logger.info("Loaded OIDC provider metadata for issuer %s (jwks_uri=%s)", issuer, metadata.jwks_uri)
    return metadata


def fetch_json_document(
    session: requests.Session,
    url: str,
    *,
    timeout: float,
    description: str,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> dict[str, Any]:
    """GET ``url`` and decode the body as a JSON object.

    Redirects are not followed, because the issuer's metadata must name its
    endpoints directly. ``description`` names the document in error messages.
    Raises the same errors as ``fetch_provider_metadata``.
    """
    try:
        response = session.get(
            url,
            timeout=timeout,
            stream=True,
            allow_redirects=False,
            headers={"Accept": "application/json"},
        )
    except requests.Timeout as exc:
        raise IdentityProviderUnavailable(
            f"Fetching the {description} from {url} timed out after {timeout} s."
        ) from exc
    except requests.RequestException as exc:
        raise IdentityProviderUnavailable(
            f"Fetching the {description} from {url} failed: {type(exc).__name__}."
        ) from exc

    with response:
        status = response.status_code
        if status >= 500 or status == 429:
            raise IdentityProviderUnavailable(
                f"The {description} at {url} returned HTTP {status}. Retry later."
            )
        if status != 200:
            raise OIDCConfigurationError(
                f"The {description} at {url} returned HTTP {status}, expected 200. "
                "Check the configured issuer URL."
            )
        body = _read_limited(response, url, description, max_bytes)

    try:
        document = json.loads(body)
    except ValueError as exc:
        raise OIDCConfigurationError(f"The {description} at {url} is not valid JSON.") from exc
    if not isinstance(document, dict):
        raise OIDCConfigurationError(f"The {description} at {url} is not a JSON object.")
    return document


def _read_limited(response: requests.Response, url: str, description: str, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(chunk_size=64 * 1024):
            size += len(chunk)
            if size > max_bytes:
                raise OIDCConfigurationError(
                    f"The {description} at {url} is larger than the {max_bytes}-byte limit."
                )
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise IdentityProviderUnavailable(
            f"Reading the {description} from {url} failed: {type(exc).__name__}."
        ) from exc
    return b"".join(chunks)


def _check_url(name: str, value: str) -> None:
    parts = urlsplit(value)
    # NOTE: plain http is accepted so that tests and loopback deployments work;
    # requiring https for non-loopback issuers is left to the configuration layer.
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise OIDCConfigurationError(f"The OIDC {name} {value!r} is not an absolute http(s) URL.")


def _required_url(document: dict[str, Any], name: str, source_url: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value:
        raise OIDCConfigurationError(f"The discovery document at {source_url} has no {name}.")
    _check_url(name, value)
    return value


def _optional_url(document: dict[str, Any], name: str, source_url: str) -> str | None:
    if document.get(name) is None:
        return None
    return _required_url(document, name, source_url)
