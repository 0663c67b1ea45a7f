"""The RateLimit-Policy and RateLimit response header fields.

The syntax follows draft-ietf-httpapi-ratelimit-headers-11 (May 2026), unchanged
for these two fields since draft 08. Each field is a Structured Fields List whose
members are the policy name as a String with Integer parameters. ``q`` is the
quota and ``w`` the window in seconds. ``r`` is the quota still available, and
``t`` the seconds until the strategy frees quota again::

    RateLimit-Policy: "provider";q=600;w=60
    RateLimit: "provider";r=599;t=60

Each decorator on a route adds one member, so stacked limits list every policy.
The members are kept per request and written in an ``after_request`` hook, so that
responses rendered by error handlers carry them too.
"""

from __future__ import annotations

from flask import Response

from ..context import request_state
from .policies import Policy

POLICY_HEADER = "RateLimit-Policy"
LIMIT_HEADER = "RateLimit"
_STATE_KEY = "rate_limit_fields"


def policy_member(policy: Policy) -> str:
    # Policy names are validated to contain no quote, backslash or space, so quoting is all the escaping needed.
    return f'"{policy.name}";q={policy.quota};w={policy.window_seconds}'


def limit_member(policy: Policy, remaining: int, reset_seconds: int) -> str:
    return f'"{policy.name}";r={remaining};t={reset_seconds}'


def record_fields(policy_field: str, limit_field: str | None) -> None:
    """Keep the members of one policy for the response of the current request."""
    fields: list[tuple[str, str | None]] = request_state().setdefault(_STATE_KEY, [])
    fields.append((policy_field, limit_field))


def apply_fields(response: Response) -> Response:
    """Write the members recorded during the request into the response's header fields."""
    fields: list[tuple[str, str | None]] = request_state().get(_STATE_KEY, [])
    if not fields:
        return response

    response.headers[POLICY_HEADER] = ", ".join(policy for policy, _ in fields)
    limits = [limit for _, limit in fields if limit is not None]
    if limits:
        response.headers[LIMIT_HEADER] = ", ".join(limits)

    return response
