"""Start, stop and drive the local OpenID provider in ``tests/idp``.

The provider is ``tests/idp/server.mjs`` (oidc-provider 9 on Node.js). It
listens on 127.0.0.1 only and signs with keys that this module generates, so a
test can restart it with a fresh key set to exercise key rotation.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from joserfc.jwk import ECKey, KeySet, RSAKey

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "DEVELOPER_AUDIENCE",
    "IDP_DIR",
    "PROVIDER_AUDIENCE",
    "IdPLoginError",
    "IdPSetupError",
    "LocalIdP",
    "ensure_node_modules",
    "generate_signing_keys",
]

logger = logging.getLogger("flask_federation.tests.idp")

IDP_DIR = Path(__file__).resolve().parent.parent / "idp"

CLIENT_ID = "federation-test"
CLIENT_SECRET = "federation-test-secret"
PROVIDER_AUDIENCE = "urn:federation:provider"
DEVELOPER_AUDIENCE = "urn:federation:developer"

# Node.js and oidc-provider start in about a second on a 2-core machine; the
# margin covers a cold disk cache.
STARTUP_TIMEOUT_SECONDS = 20.0
NPM_CI_TIMEOUT_SECONDS = 300.0
HTTP_TIMEOUT_SECONDS = 5.0

# Each login takes two form posts and about six redirects.
MAX_LOGIN_STEPS = 20


class IdPSetupError(RuntimeError):
    """Node.js or the provider's npm dependencies are not available."""


class IdPLoginError(RuntimeError):
    """The provider did not complete a login flow the way ``login_via_idp`` expects."""


def ensure_node_modules() -> None:
    """Run ``npm ci`` in ``tests/idp`` when its ``node_modules`` folder is missing.

    Raises ``IdPSetupError`` when ``node`` or ``npm`` is not on PATH or
    ``npm ci`` fails, with npm's output in the message.
    """
    if shutil.which("node") is None:
        raise IdPSetupError("node is not on PATH; install Node.js (tested with 20.20) to run the OIDC provider tests")
    if (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise IdPSetupError("npm is not on PATH; install npm to fetch the OIDC provider's dependencies")

    logger.info("Running npm ci in %s", IDP_DIR)
    try:
        completed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=IDP_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise IdPSetupError(f"npm ci in {IDP_DIR} timed out after {NPM_CI_TIMEOUT_SECONDS:.0f} s") from exc
    if completed.returncode != 0:
        raise IdPSetupError(
            f"npm ci in {IDP_DIR} failed with exit code {completed.returncode}:\n"
            f"{completed.stdout}\n{completed.stderr}"
        )


def generate_signing_keys() -> KeySet:
    """Generate a private key set with one RS256 and one ES256 key, each with a fresh kid."""
    suffix = secrets.token_hex(4)
    rsa_key = RSAKey.generate_key(
        2048,
        parameters={"kid": f"rsa-{suffix}", "use": "sig", "alg": "RS256"},
        private=True,
    )
    ec_key = ECKey.generate_key(
        "P-256",
        parameters={"kid": f"ec-{suffix}", "use": "sig", "alg": "ES256"},
        private=True,
    )
    return KeySet([rsa_key, ec_key])


def _free_loopback_port() -> int:
    # The port is free when this returns. Another process could take it before
    # the provider binds it, and then start() fails with the bind error.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalIdP:
    """A running ``tests/idp/server.mjs`` process on a free 127.0.0.1 port.

    The port is chosen on the first ``start()`` and kept across restarts, so
    the issuer stays the same.
    """

    def __init__(
        self,
        *,
        redirect_uris: list[str] | None = None,
        post_logout_redirect_uris: list[str] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
    ) -> None:
        self.redirect_uris = list(redirect_uris or [])
        self.post_logout_redirect_uris = list(post_logout_redirect_uris or [])
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.keys: KeySet = generate_signing_keys()
        self._work_dir = Path(tempfile.mkdtemp(prefix="federation-idp-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._http = requests.Session()
        # Only loopback is reachable in tests; ignore any proxy settings.
        self._http.trust_env = False

    @property
    def issuer(self) -> str:
        if self.port is None:
            raise RuntimeError("The IdP has not been started; call start() first")
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def public_jwks(self) -> dict[str, Any]:
        """Return the public JWKS that the provider currently publishes."""
        return dict(self.keys.as_dict(private=False))

    def start(self) -> None:
        """Start the provider and wait until it prints READY.

        Raises ``IdPSetupError`` when Node.js or npm is missing and
        ``RuntimeError``, with the process's stderr, when the provider exits
        or does not become ready within ``startup_timeout`` seconds.
        """
        if self.is_running:
            return
        ensure_node_modules()
        if self.port is None:
            self.port = _free_loopback_port()

        keys_path = self._work_dir / "jwks.json"
        keys_path.write_text(json.dumps(self.keys.as_dict(private=True)), encoding="utf-8")
        stdout_path = self._work_dir / "stdout.log"
        stderr_path = self._work_dir / "stderr.log"

        command = ["node", "server.mjs", "--port", str(self.port), "--keys", str(keys_path)]
        for uri in self.redirect_uris:
            command += ["--redirect-uri", uri]
        for uri in self.post_logout_redirect_uris:
            command += ["--post-logout-redirect-uri", uri]

        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            self._process = subprocess.Popen(command, cwd=IDP_DIR, stdout=stdout, stderr=stderr)
        self._wait_until_ready(stdout_path, stderr_path)
        logger.info("Started the test IdP at %s (pid %d)", self.issuer, self._process.pid)

    def _wait_until_ready(self, stdout_path: Path, stderr_path: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if b"READY" in stdout_path.read_bytes():
                return
            if self._process.poll() is not None:
                stderr = stderr_path.read_text(encoding="utf-8", errors="replace")
                self._process = None
                raise RuntimeError(f"The test IdP exited before it was ready. Its stderr:\n{stderr}")
            time.sleep(0.05)

        self.stop()
        stderr = stderr_path.read_text(encoding="utf-8", errors="replace")
        raise RuntimeError(
            f"The test IdP did not print READY within {self.startup_timeout} s. Its stderr:\n{stderr}"
        )

    def stop(self) -> None:
        """Stop the provider process. The provider keeps no state across restarts."""
        process = self._process
        self._process = None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.warning("The test IdP (pid %d) ignored SIGTERM; killing it", process.pid)
            process.kill()
            process.wait(timeout=5)

    def restart(self, new_keys: bool = False) -> None:
        """Restart the provider on the same port, with a new key set when ``new_keys`` is true."""
        self.stop()
        if new_keys:
            self.keys = generate_signing_keys()
        self.start()

    def close(self) -> None:
        """Stop the provider and delete its temporary files."""
        self.stop()
        self._http.close()
        shutil.rmtree(self._work_dir, ignore_errors=True)

    def client_credentials_token(self, resource: str, scope: str, **extra: str) -> str:
        """Request an access token with the client-credentials grant and return it.

        ``extra`` becomes additional form parameters. The provider copies
        ``provider_id`` and ``developer_id`` from them into the token.
        """
        response = self._http.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "resource": resource, "scope": scope, **extra},
            auth=(CLIENT_ID, CLIENT_SECRET),
            timeout=HTTP_TIMEOUT_SECONDS,
        )
        if response.status_code != 200:
            raise RuntimeError(f"The token request failed with HTTP {response.status_code}: {response.text}")
        token: str = response.json()["access_token"]
        return token

    def exchange_code(self, code: str, *, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        """Redeem an authorization code at the token endpoint and return the token response."""
        response = self._http.post(
            f"{self.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            },
            auth=(CLIENT_ID, CLIENT_SECRET),
            timeout=HTTP_TIMEOUT_SECONDS,
        )
        if response.status_code != 200:
            raise RuntimeError(f"The code exchange failed with HTTP {response.status_code}: {response.text}")
        body: dict[str, Any] = response.json()
        return body

    def login_via_idp(
        self,
        session: requests.Session,
        authorize_url: str,
        username: str,
    ) -> str:
        """Sign ``username`` in through the provider's login and consent forms.

        Starts at ``authorize_url`` and follows redirects only while they stay
        on the issuer. Returns the first redirect that leaves the issuer, which
        is the client's redirect URI with ``code`` and ``state``, or with
        ``error`` when the provider rejected the request. The provider ignores
        the password and has the accounts alice, bob, dave, erin and
        unmapped (see ``server.mjs``).

        Raises ``IdPLoginError`` when the provider rejects the login name or
        returns anything other than a redirect or a form.
        """
        issuer_origin = _origin(self.issuer)
        response = session.get(authorize_url, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS)
        login_posted = False

        for _ in range(MAX_LOGIN_STEPS):
            if response.is_redirect:
                location = urljoin(response.url, response.headers["Location"])
                if _origin(location) != issuer_origin:
                    return location
                response = session.get(location, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS)
                continue

            form = _find_form(response)
            prompt = form.fields.get("prompt")
            if prompt == "login":
                if login_posted:
                    raise IdPLoginError(f"The IdP rejected the login name {username!r}; it shows the login form again")
                form.fields.update({"login": username, "password": "ignored-by-the-test-idp"})
                login_posted = True
            elif prompt != "consent":
                raise IdPLoginError(f"The IdP showed an unexpected form (prompt={prompt!r}) at {response.url}")
            response = session.post(
                urljoin(response.url, form.action),
                data=form.fields,
                allow_redirects=False,
                timeout=HTTP_TIMEOUT_SECONDS,
            )
            if prompt == "login" and response.status_code == 400:
                raise IdPLoginError(f"The IdP rejected the login name {username!r}: {response.text.strip()}")

        raise IdPLoginError(f"The login flow did not leave the IdP within {MAX_LOGIN_STEPS} steps")

    def logout_via_idp(self, session: requests.Session, end_session_url: str) -> str:
        """Confirm an RP-initiated logout at ``end_session_url`` and return where the provider sends the browser.

        That is the ``post_logout_redirect_uri`` when the request named a
        registered one, otherwise the provider's own logout-success page.
        """
        response = session.get(end_session_url, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS)
        form = _find_form(response)
        form.fields["logout"] = "yes"
        response = session.post(
            urljoin(response.url, form.action),
            data=form.fields,
            allow_redirects=False,
            timeout=HTTP_TIMEOUT_SECONDS,
        )
        issuer_origin = _origin(self.issuer)
        while response.is_redirect:
            location = urljoin(response.url, response.headers["Location"])
            if _origin(location) != issuer_origin:
                return location
            response = session.get(location, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS)
        if response.status_code != 200:
            raise IdPLoginError(f"The logout ended with HTTP {response.status_code} at {response.url}")
        return response.url


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


class _Form:
    def __init__(self, action: str) -> None:
        self.action = action
        self.fields: dict[str, str] = {}


class _FormParser(HTMLParser):
    """Collect the forms of a page with the names and values of their input fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self._current: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = _Form(attributes.get("action", ""))
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and attributes.get("name"):
            self._current.fields[attributes["name"]] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _find_form(response: requests.Response) -> _Form:
    if response.status_code != 200:
        raise IdPLoginError(
            f"The IdP returned HTTP {response.status_code} at {response.url}: {response.text[:500]}"
        )
    parser = _FormParser()
    parser.feed(response.text)
    if len(parser.forms) != 1:
        raise IdPLoginError(f"Expected one form at {response.url}, found {len(parser.forms)}")
    return parser.forms[0]
