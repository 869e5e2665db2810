"""WWW-Authenticate parsing and the bearer token flow, against an in-memory token service."""

import base64
import json

import pytest

from registry_client.auth import Authenticator, Credentials, parse_challenges, scope_for
from registry_client.errors import AuthError

HUB_CHALLENGE = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                 'scope="repository:library/httpd:pull"')


def test_parse_docker_hub_challenge():
    [challenge] = parse_challenges(HUB_CHALLENGE)
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/httpd:pull",
    }


def test_parse_quoted_comma_and_escape():
    [challenge] = parse_challenges(r'Bearer realm="https://a/t",scope="repository:x:pull,push",'
                                   r'error="say \"hi\""')
    assert challenge.params["scope"] == "repository:x:pull,push"
    assert challenge.params["error"] == 'say "hi"'


def test_parse_several_challenges():
    challenges = parse_challenges('Basic realm="registry", Bearer realm="https://a/t", '
                                  'service=svc')
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[1].params == {"realm": "https://a/t", "service": "svc"}


def test_parse_scheme_case_and_spaces():
    [challenge] = parse_challenges('BEARER   realm = "https://a/t" ,  Service="s"')
    assert challenge.scheme == "bearer"
    assert challenge.params == {"realm": "https://a/t", "service": "s"}


def test_parse_empty_header():
    assert parse_challenges("") == []


class FakeResponse:
    def __init__(self, status, body):
        self.status_code = status
        self.body = body

    def json(self):
        if isinstance(self.body, Exception):
            raise self.body
        return self.body


class TokenService:
    """An in-memory token endpoint that records the requests it receives."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []

    def request(self, method, url, timeout=None, **kwargs):
        self.requests.append((method, url, kwargs))
        return self.answers.pop(0)


def test_anonymous_token_request_sends_scope_and_service():
    service = TokenService([FakeResponse(200, {"token": "t1", "expires_in": 300})])
    auth = Authenticator(service)
    scope = scope_for("library/httpd")
    assert auth.header(scope) is None
    assert auth.handle_challenge(HUB_CHALLENGE, scope, None)
    assert auth.header(scope) == "Bearer t1"
    method, url, kwargs = service.requests[0]
    assert (method, url) == ("GET", "https://auth.docker.io/token")
    assert kwargs["params"] == {"scope": "repository:library/httpd:pull",
                                "service": "registry.docker.io"}
    assert "headers" not in kwargs


def test_token_reused_until_expiry():
    service = TokenService([FakeResponse(200, {"access_token": "a1", "expires_in": 300})])
    auth = Authenticator(service)
    auth.handle_challenge(HUB_CHALLENGE, "s", None)
    assert auth.header("s") == "Bearer a1"
    assert auth.header("s") == "Bearer a1"
    assert len(service.requests) == 1


def test_expired_token_fetched_again():
    # expires_in 1 is inside the renewal margin, so every use fetches a new token.
    service = TokenService([FakeResponse(200, {"token": "t1", "expires_in": 1}),
                            FakeResponse(200, {"token": "t2", "expires_in": 1})])
    auth = Authenticator(service)
    auth.handle_challenge(HUB_CHALLENGE, "s", None)
    assert auth.header("s") == "Bearer t1"
    assert auth.header("s") == "Bearer t2"


def test_rejected_token_retried_once_then_given_up():
    service = TokenService([FakeResponse(200, {"token": "t1", "expires_in": 300})])
    auth = Authenticator(service)
    auth.handle_challenge(HUB_CHALLENGE, "s", None)
    header = auth.header("s")
    assert auth.handle_challenge(HUB_CHALLENGE, "s", header)
    assert not auth.handle_challenge(HUB_CHALLENGE, "s", "Bearer something-else")


def test_basic_credentials_sent_to_token_service():
    service = TokenService([FakeResponse(200, {"token": "t"})])
    auth = Authenticator(service, Credentials("alice", "s3cret"))
    auth.handle_challenge(HUB_CHALLENGE, "s", None)
    auth.header("s")
    _, _, kwargs = service.requests[0]
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert kwargs["headers"]["Authorization"] == expected
    assert kwargs["params"]["account"] == "alice"


def test_basic_challenge_uses_credentials_directly():
    auth = Authenticator(TokenService([]), Credentials("alice", "pw"))
    assert auth.handle_challenge('Basic realm="r"', "s", None)
    assert auth.header("s") == "Basic " + base64.b64encode(b"alice:pw").decode()
    assert not auth.handle_challenge('Basic realm="r"', "s", auth.header("s"))


def test_refused_token_error_hides_secrets():
    service = TokenService([FakeResponse(401, {})])
    auth = Authenticator(service, Credentials("alice", "s3cret"))
    auth.handle_challenge(HUB_CHALLENGE, "s", None)
    with pytest.raises(AuthError) as caught:
        auth.header("s")
    text = str(caught.value) + repr(Credentials("alice", "s3cret"))
    assert "s3cret" not in text
    assert "rejected the credentials" in str(caught.value)


def test_response_without_token_is_an_error():
    service = TokenService([FakeResponse(200, {"expires_in": 60})])
    auth = Authenticator(service)
    auth.handle_challenge(HUB_CHALLENGE, "s", None)
    with pytest.raises(AuthError, match="returned no token"):
        auth.header("s")


def test_invalid_json_is_an_error():
    service = TokenService([FakeResponse(200, json.JSONDecodeError("x", "", 0))])
    auth = Authenticator(service)
    auth.handle_challenge(HUB_CHALLENGE, "s", None)
    with pytest.raises(AuthError, match="invalid JSON"):
        auth.header("s")
