"""HTTP to one registry: endpoints, retries, authentication and redirects.

`RegistryClient(config)` turns a reference into the endpoints to try (for
Docker Hub: each mirror, then Docker Hub itself) and opens a `Repository`
on one of them. `Repository.request()` is the only place that sends HTTP:

- a 401 is answered by the `Authenticator` (token or Basic) and retried;
- connection errors and 5xx are retried with exponential backoff;
- a 429 waits for `Retry-After` and is retried, and when retries run out
  the error quotes Docker Hub's `ratelimit-*` headers;
- redirects are followed by hand, so `Authorization` is never sent to
  another host (blob downloads redirect to a CDN, and S3-style storage
  rejects a second credential).
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from registry_client import credentials as credential_store
from registry_client.auth import Authenticator, Credentials, scope_for
from registry_client.config import RegistryConfig
from registry_client.errors import AuthError, PullStopped, RateLimitError, RegistryError, UnreachableError
from registry_client.reference import DOCKER_HUB, Reference
from runtime import explain

log = logging.getLogger(__name__)


class RedactQueryStrings(logging.Filter):
    """Cut query strings out of urllib3's request log lines.

    Token requests and CDN redirects carry signatures or account names in
    the query string, and urllib3 logs each request's URL at debug level.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.split("?", 1)[0] + "?..." if isinstance(arg, str) and "?" in arg else arg
                for arg in record.args)
        return True


logging.getLogger("urllib3.connectionpool").addFilter(RedactQueryStrings())

USER_AGENT = "pyrun/0.1"
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60
MAX_ATTEMPTS = 5
FIRST_BACKOFF = 0.25       # seconds; doubles on each retry
MAX_BACKOFF = 8
# Wait for a 429's Retry-After only up to this; longer waits become an error.
MAX_RETRY_AFTER = 60
MAX_REDIRECTS = 5
REDIRECT_STATUSES = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class Endpoint:
    """A registry API base URL (`https://registry-1.docker.io`) and what it is."""

    url: str
    registry: str            # the registry it serves, e.g. docker.io
    is_mirror: bool = False

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    def describe(self) -> str:
        return f"mirror {self.url}" if self.is_mirror else self.url


def rate_limit_summary(headers) -> str:
    """Render Docker Hub's `ratelimit-limit`/`ratelimit-remaining` headers, if any."""
    parts = []
    for name in ("ratelimit-limit", "ratelimit-remaining"):
        if headers.get(name):
            parts.append(f"{name}: {headers[name]}")
    return ", ".join(parts)


def remaining_pulls(headers) -> int | None:
    """Return the count in `ratelimit-remaining: 76;w=21600`, or None when it is missing."""
    value = headers.get("ratelimit-remaining")
    if not value:
        return None
    try:
        return int(value.split(";", 1)[0])
    except ValueError:
        return None


def retry_after_seconds(value: str | None) -> float | None:
    """Parse `Retry-After`: seconds, or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def registry_error_code(response) -> str:
    """Return the first `errors[].code` of a registry's JSON error body, e.g. MANIFEST_UNKNOWN."""
    try:
        errors = response.json().get("errors") or []
        return str(errors[0].get("code", ""))
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""


class RegistryClient:
    """Maps references to endpoints and shares one HTTP session between them."""

    def __init__(self, config: RegistryConfig, *, max_attempts: int = MAX_ATTEMPTS) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        self.config = config
        self.max_attempts = max_attempts
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        pool = max(10, config.max_concurrent_downloads * 2)
        adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.authenticators: dict[str, Authenticator] = {}
        self.lock = threading.Lock()
        # Set by the caller to stop retries early: a failed layer or Ctrl-C.
        self.stopped = threading.Event()

    def close(self) -> None:
        self.session.close()

    def endpoints(self, reference: Reference) -> list[Endpoint]:
        """Return the endpoints to try for `reference`, in order."""
        if reference.registry == DOCKER_HUB:
            mirrors = [Endpoint(url, DOCKER_HUB, True) for url in self.config.registry_mirrors]
            return mirrors + [Endpoint(self.config.docker_hub_endpoint, DOCKER_HUB)]
        scheme = "http" if self.config.is_insecure(reference.registry) else "https"
        # NOTE: an insecure registry is spoken to in plain HTTP only; Docker
        # would try HTTPS first. A TLS registry on localhost therefore needs
        # an https:// mirror entry or a name outside insecure-registries.
        return [Endpoint(f"{scheme}://{reference.registry}", reference.registry)]

    def check_endpoint(self, endpoint: Endpoint) -> None:
        """Reject plain HTTP to a host that is not local or listed as insecure."""
        parts = urlsplit(endpoint.url)
        if parts.scheme == "http" and not self.config.is_insecure(parts.netloc):
            raise RegistryError(
                f"refusing plain HTTP to {endpoint.describe()}",
                hint=f"add {parts.netloc} to insecure-registries in {self.config.path}")

    def repository(self, endpoint: Endpoint, repository: str) -> "Repository":
        self.check_endpoint(endpoint)
        with self.lock:
            authenticator = self.authenticators.get(endpoint.url)
            if authenticator is None:
                credentials = None
                # A mirror gets no Docker Hub credentials: they are for Docker Hub only.
                if not endpoint.is_mirror:
                    credentials = credential_store.lookup_credentials(endpoint.registry)
                authenticator = Authenticator(self.session, credentials)
                self.authenticators[endpoint.url] = authenticator
        return Repository(self, endpoint, repository, authenticator)

    def login(self, endpoint: Endpoint, credentials: Credentials) -> None:
        """Check `credentials` against the registry's `/v2/`, as `docker login` does."""
        self.check_endpoint(endpoint)
        authenticator = Authenticator(self.session, credentials)
        repository = Repository(self, endpoint, "", authenticator)
        # Docker Hub's token service needs a scope-less request for a login check.
        response = repository.request("GET", "/v2/", scope="")
        if response.status_code != 200:
            raise AuthError("login failed", method="GET", url=endpoint.url + "/v2/",
                            status=response.status_code, code=registry_error_code(response))


class Repository:
    """One repository on one endpoint; sends its requests with auth and retries."""

    def __init__(self, client: RegistryClient, endpoint: Endpoint, name: str,
                 authenticator: Authenticator) -> None:
        self.client = client
        self.endpoint = endpoint
        self.name = name
        self.authenticator = authenticator
        self.scope = scope_for(name) if name else ""
        # A caller with another endpoint to fall back to may lower this.
        self.max_attempts = client.max_attempts

    def url(self, path: str) -> str:
        return f"{self.endpoint.url}/v2/{self.name}/{path}"

    def request(self, method: str, path_or_url: str, *, headers: dict | None = None,
                stream: bool = False, scope: str | None = None):
        """Send a request and return the final response (any status).

        Retries connection errors, 5xx and 429 up to the client's attempt
        limit, handles up to two auth challenges, and follows redirects.
        Raises `RegistryError` when retries run out.
        """
        url = path_or_url if "://" in path_or_url else self.endpoint.url + path_or_url
        scope = self.scope if scope is None else scope
        challenges = 0
        attempt = 0
        while True:
            attempt += 1
            request_headers = dict(headers or {})
            authorization = self.authenticator.header(scope)
            if authorization:
                request_headers["Authorization"] = authorization
            try:
                response = self._send(method, url, request_headers, stream)
            except OSError as err:
                if attempt >= self.max_attempts:
                    raise UnreachableError(f"cannot reach {self.endpoint.describe()}: {err}",
                                           method=method, url=url) from err
                self._backoff(attempt, f"{method} {url} failed ({type(err).__name__})")
                continue

            status = response.status_code
            if status == 401 and challenges < 2:
                challenges += 1
                header = response.headers.get("WWW-Authenticate", "")
                if self.authenticator.handle_challenge(header, scope, authorization):
                    response.close()
                    attempt -= 1
                    continue
                return response
            if status == 429 or status >= 500:
                if attempt >= self.max_attempts:
                    return response
                if status == 429:
                    wait = retry_after_seconds(response.headers.get("Retry-After"))
                    if wait is not None and wait > MAX_RETRY_AFTER:
                        raise self.rate_limit_error(method, url, response)
                    response.close()
                    self._backoff(attempt, f"{method} {url} returned 429 Too Many Requests",
                                  wait)
                else:
                    response.close()
                    self._backoff(attempt, f"{method} {url} returned {status}")
                continue
            return response

    def _send(self, method: str, url: str, headers: dict, stream: bool):
        """Send one request, following redirects by hand (at most MAX_REDIRECTS)."""
        origin = urlsplit(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            response = self.client.session.request(
                method, url, headers=headers, stream=stream, allow_redirects=False,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
            if response.status_code not in REDIRECT_STATUSES:
                explain.step("registry request", method=method, url=url, status=response.status_code)
                return response
            location = response.headers.get("Location")
            response.close()
            if not location:
                return response
            url = urljoin(url, location)
            if urlsplit(url).netloc != origin and "Authorization" in headers:
                # The distribution spec: clients MUST NOT send credentials
                # to the host a blob redirects to.
                headers = {k: v for k, v in headers.items() if k != "Authorization"}
            log.debug("following redirect to %s", urlsplit(url).netloc)
        raise RegistryError("too many redirects", method=method, url=url)

    def _backoff(self, attempt: int, reason: str, wait: float | None = None) -> None:
        if wait is None:
            wait = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (attempt - 1))
            wait *= random.uniform(0.8, 1.2)
        log.warning("%s; retrying in %.1f s (attempt %d of %d)", reason, wait,
                    attempt + 1, self.max_attempts)
        if self.client.stopped.wait(wait):
            raise PullStopped("the pull was stopped")

    def rate_limit_error(self, method: str, url: str, response) -> RateLimitError:
        summary = rate_limit_summary(response.headers)
        retry_after = response.headers.get("Retry-After")
        message = "too many requests"
        if retry_after:
            message += f", retry after {retry_after} s"
        if summary:
            message += f" ({summary})"
        return RateLimitError(
            message, method=method, url=url, status=429, code=registry_error_code(response),
            hint="wait, or log in with 'pyrun login' for a higher limit")

    def error(self, message: str, method: str, url: str, response,
              cls: type[RegistryError] = RegistryError) -> RegistryError:
        """Build the error for an unexpected final response."""
        status = response.status_code
        if status == 429:
            return self.rate_limit_error(method, url, response)
        code = registry_error_code(response)
        if status in (401, 403):
            return AuthError(
                f"pull access denied for {self.name}: the repository does not exist "
                "or requires 'pyrun login'",
                method=method, url=url, status=status, code=code)
        return cls(message, method=method, url=url, status=status, code=code)
