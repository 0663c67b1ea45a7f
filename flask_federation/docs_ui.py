"""The interactive API reference at ``{prefix}/docs``: Swagger UI over ``{prefix}/openapi.json``.

The Swagger UI files come from the ``flask-swagger-ui`` package, a dependency.
The page loads no file from a CDN, so it works on deployments without Internet
access. Only its static ``dist`` files are used, not its blueprint: the page and
its start-up script are ours, so the Content-Security-Policy can forbid inline
scripts.
"""

from __future__ import annotations

import functools
import html
import importlib.util
from pathlib import Path

from .config import API_DOCS, ConfigurationError

SWAGGER_PACKAGE = "flask-swagger-ui"

#: The files of the Swagger UI distribution the page loads, and nothing else of that folder.
SWAGGER_ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "favicon-16x16.png"})

# Swagger UI 5.34 sets its inline styles through the DOM style API, which "style-src 'self'"
# does not block; tests/test_api_reference.py fails on any CSP violation Chromium logs.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

#: Headers of the HTML page, besides its Content-Type.
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

# Served as a file, not inline, so that "script-src 'self'" holds. The document URL
# comes from a data attribute of the page, which the server fills in per prefix.
INIT_SCRIPT = """\
"use strict";
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    displayRequestDuration: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""

_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <link rel="icon" type="image/png" sizes="32x32" href="{assets}/favicon-32x32.png">
  <link rel="icon" type="image/png" sizes="16x16" href="{assets}/favicon-16x16.png">
</head>
<body>
  <noscript>This API reference needs JavaScript. The OpenAPI document itself is at <a href="{document}">{document}</a>.</noscript>
  <div id="swagger-ui" data-openapi-url="{document}"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script src="{init_script}"></script>
</body>
</html>
"""


@functools.cache
def swagger_ui_dist() -> Path | None:
    """Return the folder of the installed Swagger UI files, or ``None`` when they are missing."""
    spec = importlib.util.find_spec("flask_swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None

    dist = Path(next(iter(spec.submodule_search_locations))) / "dist"
    if not all((dist / name).is_file() for name in SWAGGER_ASSETS):
        return None
    return dist


def require_swagger_ui() -> Path:
    """Return the Swagger UI folder, or raise :class:`ConfigurationError` naming the fix."""
    dist = swagger_ui_dist()
    if dist is None:
        raise ConfigurationError(
            f"{API_DOCS} is 'swagger', but the Swagger UI files of the {SWAGGER_PACKAGE} package are missing. "
            f"Install it (pip install {SWAGGER_PACKAGE}) or set {API_DOCS} to 'off'."
        )
    return dist


def swagger_ui_version() -> str | None:
    """Return the Swagger UI version that the package ships, such as ``v5.34.0``."""
    dist = swagger_ui_dist()
    version_file = dist / "VERSION" if dist is not None else None
    if version_file is None or not version_file.is_file():
        return None
    return version_file.read_text(encoding="utf-8").strip()


def render_page(*, document_url: str, assets_url: str, init_script_url: str, title: str) -> str:
    """Return the HTML of the reference page; every URL is escaped into its attribute."""
    return _PAGE.format(
        title=html.escape(title),
        assets=html.escape(assets_url),
        document=html.escape(document_url),
        init_script=html.escape(init_script_url),
    )
