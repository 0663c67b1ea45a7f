"""OpenID Connect access-token validation, free of any web framework.

The submodules fetch provider metadata (``discovery``), cache the issuer's
signing keys (``jwks``) and validate bearer access tokens (``tokens``). The
Flask integration wires them into request handling elsewhere in the package.
"""

from __future__ import annotations
