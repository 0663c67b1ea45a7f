"""HTTP for the smoke runner: a timeout on every request, redirects followed only on the same origin."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from ..version import package_version

MAX_REDIRECTS = 5
#: Longest Retry-After, in seconds, that the runner waits out once before it retries a 429.
MAX_RETRY_AFTER = 30


class CheckFailed(Exception):
    """A smoke check found the server misbehaving; the message states what was expected and what came."""


class CheckSkipped(Exception):
    """A smoke check could not run, for example for lack of a credential; the message names what to set."""


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class SmokeClient:
    """Sends requests to one deployment, relative to its base URL."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"flask-federation-smoke/{package_version()}"

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> requests.Response:
        """Send one request and return the final response, or raise :class:`CheckFailed`.

        A 429 with a ``Retry-After`` of at most ``MAX_RETRY_AFTER`` seconds is retried
        once after that wait, so the runner's own burst does not fail a deployment's
        checks. Every request of the runner that writes carries an ``Idempotency-Key``,
        so the retry cannot create a second tenant.
        """
        response = self._send(method, path, key, headers, body)
        wait = _retry_after(response)
        if response.status_code == 429 and wait is not None and wait <= MAX_RETRY_AFTER:
            time.sleep(wait)
            response = self._send(method, path, key, headers, body)
        return response

    def _send(self, method: str, path: str, key: str | None, headers: Mapping[str, str] | None, body: Any) -> requests.Response:
        """Send a request, following redirects only to the same scheme, host and port.

        At most ``MAX_REDIRECTS`` redirects are followed, because credentials must never reach another host.
        """
        url = self.base_url + path
        all_headers = dict(headers or {})
        if key is not None:
            all_headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body) if body is not None else None
        if data is not None:
            all_headers["Content-Type"] = "application/json"

        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self.session.request(method, url, headers=all_headers, data=data, timeout=self.timeout, allow_redirects=False)
            except requests.Timeout:
                raise CheckFailed(f"{method} {url} timed out after {self.timeout:g} s.") from None
            except requests.RequestException as error:
                raise CheckFailed(f"{method} {url} failed: {type(error).__name__}: {error}") from None

            if not response.is_redirect:
                return response

            target = urljoin(url, response.headers["Location"])
            if origin(target) != origin(self.base_url):
                raise CheckFailed(
                    f"{method} {url} redirected ({response.status_code}) to another host, {target}; "
                    "the smoke runner does not follow it. Check --base-url."
                )
            url = target
            if response.status_code in (301, 302, 303):
                method, data = "GET", None

        raise CheckFailed(f"{method} {path} redirected more than {MAX_REDIRECTS} times.")


def _retry_after(response: requests.Response) -> float | None:
    """Return the ``Retry-After`` delay in seconds, or ``None`` when absent or given as a date."""
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def json_body(response: requests.Response) -> Any:
    """Return the parsed JSON body, or raise :class:`CheckFailed` saying what came instead."""
    content_type = response.headers.get("Content-Type", "")
    if not content_type.startswith("application/json"):
        raise CheckFailed(f"expected an application/json body, got Content-Type {content_type!r} (status {response.status_code}).")
    try:
        return response.json()
    except ValueError:
        raise CheckFailed(f"the body is not valid JSON (status {response.status_code}).") from None


def success_data(response: requests.Response, status: int = 200) -> Any:
    """Check the status and the success envelope ``{"ok": true, "data": ...}``; return ``data``."""
    body = json_body(response)
    if response.status_code != status:
        raise CheckFailed(f"expected status {status}, got {response.status_code}{_error_summary(body)}.")
    if not isinstance(body, dict) or set(body) != {"ok", "data"} or body["ok"] is not True:
        raise CheckFailed(f"expected the envelope {{'ok': true, 'data': ...}}, got keys {_keys(body)}.")
    _check_request_id_header(response)
    return body["data"]


def error_envelope(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """Check the status and the error envelope with ``code``; return its ``error`` object."""
    body = json_body(response)
    if response.status_code != status:
        raise CheckFailed(f"expected status {status} {code}, got {response.status_code}{_error_summary(body)}.")
    if not isinstance(body, dict) or set(body) != {"ok", "error"} or body["ok"] is not False:
        raise CheckFailed(f"expected the envelope {{'ok': false, 'error': ...}}, got keys {_keys(body)}.")

    error = body["error"]
    if not isinstance(error, dict):
        raise CheckFailed("expected 'error' to be an object.")
    for field in ("code", "message", "request_id"):
        if not isinstance(error.get(field), str) or not error[field]:
            raise CheckFailed(f"expected error.{field} to be a non-empty string, got {error.get(field)!r}.")
    extra = set(error) - {"code", "message", "details", "request_id"}
    if extra:
        raise CheckFailed(f"unexpected fields in 'error': {sorted(extra)}.")
    if error["code"] != code:
        raise CheckFailed(f"expected error code {code!r}, got {error['code']!r}: {error['message']}")
    if _check_request_id_header(response) != error["request_id"]:
        raise CheckFailed("error.request_id differs from the X-Request-ID header.")
    return error


def _check_request_id_header(response: requests.Response) -> str:
    request_id = response.headers.get("X-Request-ID")
    if not request_id:
        raise CheckFailed("the X-Request-ID response header is missing.")
    return request_id


def _keys(body: Any) -> str:
    return str(sorted(body)) if isinstance(body, dict) else type(body).__name__


def _error_summary(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return f" ({error.get('code')}: {error.get('message')})"
    return ""
