"""Registry authentication: the `WWW-Authenticate` challenge and bearer tokens.

The token flow of the distribution spec (and Docker Hub):

1. A request without credentials gets `401` and a challenge, e.g.
   `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",
   scope="repository:library/httpd:pull"`.
2. The client asks the realm for a token:
   `GET realm?service=...&scope=...`, anonymously or with Basic credentials.
3. The response is JSON with `token` and/or `access_token`, and `expires_in`
   (60 seconds when missing). The client retries with
   `Authorization: Bearer <token>`, and asks again when the token expires
   or the registry rejects it during a long pull.

A `Basic` challenge means the registry takes the user name and password on
every request instead.

Tokens and passwords never go into logs or error messages.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass, field

from registry_client.errors import AuthError
from runtime import explain

log = logging.getLogger(__name__)

# The token spec's default lifetime when the response has no `expires_in`.
DEFAULT_TOKEN_LIFETIME = 60
# Ask for a new token this many seconds before the old one expires.
EXPIRY_MARGIN = 5


@dataclass
class Challenge:
    """One challenge from a `WWW-Authenticate` header: a scheme and its parameters."""

    scheme: str                                 # "bearer" or "basic", lowercase
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Credentials:
    username: str
    password: str = field(repr=False)
    # An OAuth refresh token that `docker login` stores for some registries.
    identity_token: str = field(default="", repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a `WWW-Authenticate` value (RFC 7235) into its challenges.

    A header may hold several challenges, separated by commas like the
    parameters, so a token not followed by `=` starts a new challenge.
    Quoted values may contain commas and backslash escapes.
    """
    challenges: list[Challenge] = []
    position = 0
    length = len(header)

    def skip(chars: str) -> None:
        nonlocal position
        while position < length and header[position] in chars:
            position += 1

    def read_token() -> str:
        nonlocal position
        start = position
        while position < length and header[position] not in ' \t,="':
            position += 1
        return header[start:position]

    def read_quoted() -> str:
        nonlocal position
        position += 1  # the opening quote
        value = []
        while position < length and header[position] != '"':
            if header[position] == "\\" and position + 1 < length:
                position += 1
            value.append(header[position])
            position += 1
        position += 1  # the closing quote
        return "".join(value)

    while position < length:
        skip(" \t,")
        token = read_token()
        if not token:
            break
        skip(" \t")
        if position < length and header[position] == "=" and challenges:
            position += 1
            skip(" \t")
            if position < length and header[position] == '"':
                value = read_quoted()
            else:
                value = read_token()
            challenges[-1].params[token.lower()] = value
        else:
            challenges.append(Challenge(token.lower()))
    return challenges


def scope_for(repository: str, actions: str = "pull") -> str:
    """Return the token scope for pulling one repository: `repository:library/httpd:pull`."""
    return f"repository:{repository}:{actions}"


@dataclass
class Token:
    value: str = field(repr=False)
    expires_at: float

    def is_fresh(self) -> bool:
        return time.monotonic() < self.expires_at - EXPIRY_MARGIN


class Authenticator:
    """Holds the credentials and tokens for one registry endpoint.

    `header(scope)` gives the `Authorization` value for a request, or None
    before the registry has asked for anything. After a 401, the transport
    calls `handle_challenge(header, scope)`, which fetches a token (or
    switches to Basic) and returns True when retrying makes sense.
    Thread-safe, because layers download in parallel.
    """

    def __init__(self, session, credentials: Credentials | None = None,
                 timeout: float = 30) -> None:
        self.session = session
        self.credentials = credentials
        self.timeout = timeout
        self.challenge: Challenge | None = None
        self.tokens: dict[str, Token] = {}
        self.lock = threading.Lock()

    def header(self, scope: str) -> str | None:
        with self.lock:
            if self.challenge is None:
                return None
            if self.challenge.scheme == "basic":
                return self.credentials.basic_header() if self.credentials else None
            token = self.tokens.get(scope)
            if token is None or not token.is_fresh():
                token = self._fetch_token(scope)
            return f"Bearer {token.value}"

    def handle_challenge(self, header: str, scope: str, rejected: str | None) -> bool:
        """Take the challenge of a 401; return True when a retry may succeed.

        `rejected` is the Authorization value that got the 401. A bearer
        token rejected before its expiry is dropped and fetched again once;
        Basic credentials that were rejected are final.
        """
        challenges = parse_challenges(header or "")
        chosen = next((c for c in challenges if c.scheme == "bearer"), None)
        chosen = chosen or next((c for c in challenges if c.scheme == "basic"), None)
        if chosen is None:
            log.debug("401 without a Bearer or Basic challenge: %r", header)
            return False
        with self.lock:
            previous = self.challenge
            self.challenge = chosen
            if chosen.scheme == "basic":
                return self.credentials is not None and rejected is None
            token = self.tokens.get(scope)
            if rejected is None or previous is None:
                return True
            if token is not None and rejected == f"Bearer {token.value}":
                log.debug("the registry rejected the token for %s; asking for a new one", scope)
                del self.tokens[scope]
                return True
            return False

    def _fetch_token(self, scope: str) -> Token:
        """Ask the challenge's realm for a token for `scope` (step 2 above)."""
        params = dict(self.challenge.params)
        realm = params.pop("realm", "")
        if not realm:
            raise AuthError("the registry's Bearer challenge has no realm")
        # A login check asks for a token without a scope.
        query = {"scope": scope} if scope else {}
        if params.get("service"):
            query["service"] = params["service"]
        credentials = self.credentials
        if credentials is not None and credentials.identity_token:
            # An identity token is an OAuth2 refresh token: it is exchanged
            # with a POST instead of being sent as a password.
            # NOTE: no test covers this path: the test token issuer has no
            # OAuth2 endpoint.
            log.debug("requesting a token for %s from %s with an identity token", scope, realm)
            form = dict(query, grant_type="refresh_token", client_id="pyrun",
                        refresh_token=credentials.identity_token)
            method = "POST"
            request = dict(data=form)
        elif credentials is not None and credentials.password:
            log.debug("requesting a token for %s from %s with credentials", scope, realm)
            method = "GET"
            query["account"] = credentials.username
            request = dict(params=query, headers={"Authorization": credentials.basic_header()})
        else:
            log.debug("requesting a token for %s from %s anonymously", scope, realm)
            method = "GET"
            credentials = None
            request = dict(params=query)
        try:
            response = self.session.request(method, realm, timeout=self.timeout, **request)
        except OSError as err:
            raise AuthError(f"token service unreachable: {err}", method=method, url=realm) from err
        if response.status_code in (401, 403):
            raise AuthError(
                "the token service rejected the credentials" if credentials
                else "the token service refused an anonymous token",
                method=method, url=realm, status=response.status_code,
                hint="check the user name and password with 'pyrun login'")
        if response.status_code != 200:
            raise AuthError("the token service failed", method=method, url=realm,
                            status=response.status_code)
        try:
            body = response.json()
        except ValueError as err:
            raise AuthError("the token service returned invalid JSON",
                            method=method, url=realm) from err
        value = body.get("token") or body.get("access_token")
        if not value:
            raise AuthError("the token service returned no token",
                            method=method, url=realm)
        lifetime = body.get("expires_in") or DEFAULT_TOKEN_LIFETIME
        token = Token(value, time.monotonic() + float(lifetime))
        self.tokens[scope] = token
        explain.step("registry token", url=realm, scope=scope)
        return token
