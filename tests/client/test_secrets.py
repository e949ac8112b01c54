"""No raw token, validated or admin, ever appears in an exception message, a repr or a log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import respx

from amplify_auth_client import (
    AsyncAuthClient,
    AuthClient,
    AuthConfigError,
    AuthError,
    CreatedToken,
    InvalidRequest,
    _api,
    generate_token,
)
from tests.client.support import BASE_URL, CREATED_AT, TOKEN_ID, FakeClock, error, page, valid
from tests.support.tokens import with_a_bad_checksum

SECRET = generate_token()
ADMIN = generate_token()


@pytest.fixture(autouse=True)
def _all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + (record.exc_text or "")
        assert SECRET not in text, record
        assert ADMIN not in text, record


def assert_clean(exc: BaseException) -> None:
    """Neither secret in the message, the repr, nor any public attribute of ``exc``."""
    shown = [str(exc), repr(exc), *(repr(v) for v in vars(exc).values())]
    for text in shown:
        assert SECRET not in text
        assert ADMIN not in text


def echo(status: int) -> httpx.Response:
    # A misbehaving proxy or server that echoes the request back.
    return error(
        status,
        "invalid_request",
        f"bad token {SECRET} from admin {ADMIN}",
        errors=[{"loc": ["body", "token"], "msg": f"{SECRET} is wrong", "type": "x"}],
    )


@pytest.mark.parametrize("status", [400, 401, 409, 413, 422, 500, 503])
def test_echoed_secrets_are_scrubbed_from_validate_errors(
    api: respx.MockRouter, status: int
) -> None:
    api.post("/auth/validate").mock(return_value=echo(status))
    with pytest.raises(AuthError) as raised:
        AuthClient(BASE_URL, admin_token=ADMIN).validate(SECRET)
    assert_clean(raised.value)
    assert "[redacted]" in str(raised.value)


@pytest.mark.parametrize("status", [401, 403, 404, 422, 502])
def test_echoed_secrets_are_scrubbed_from_management_errors(
    api: respx.MockRouter, status: int
) -> None:
    api.get("/auth/tokens").mock(return_value=echo(status))
    with pytest.raises(AuthError) as raised:
        AuthClient(BASE_URL, admin_token=ADMIN).list_tokens()
    assert_clean(raised.value)


def test_transport_errors_are_scrubbed_in_messages_and_logs(api: respx.MockRouter) -> None:
    api.post("/auth/validate").mock(
        side_effect=httpx.ConnectError(f"cannot connect while sending {SECRET}")
    )
    with pytest.raises(AuthError) as raised:
        AuthClient(BASE_URL, admin_token=ADMIN).validate(SECRET)
    assert_clean(raised.value)


def test_every_validation_path_keeps_the_token_out_of_logs(
    api: respx.MockRouter, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    route = api.post("/auth/validate")
    route.side_effect = [error(503, "unavailable", "x"), valid(), httpx.ReadTimeout("slow")]
    client = AuthClient(BASE_URL, admin_token=ADMIN, max_retries=1, stale_if_error=300)
    result = client.validate(SECRET, ["read"])  # a retry, then an answer
    assert SECRET not in repr(result)
    client.validate(SECRET)  # a hit
    clock.advance(3600)
    route.side_effect = httpx.ReadTimeout("slow")
    with pytest.raises(AuthError) as raised:
        client.validate(SECRET)
    assert_clean(raised.value)
    client.validate(with_a_bad_checksum(SECRET))  # malformed
    # The retries and the outage were logged, and the autouse fixture checks those lines.
    messages = [r.getMessage() for r in caplog.records]
    assert any("retrying" in m for m in messages)
    assert any("unreachable" in m for m in messages)


def test_a_raw_token_passed_as_an_id_is_neither_sent_nor_echoed(api: respx.MockRouter) -> None:
    with pytest.raises(InvalidRequest, match="raw token") as raised:
        AuthClient(BASE_URL, admin_token=ADMIN).revoke_token(SECRET)
    assert_clean(raised.value)
    assert len(api.calls) == 0


def test_created_token_repr_hides_the_secret() -> None:
    created = CreatedToken(
        token=SECRET,
        token_id=TOKEN_ID,
        name="ci",
        scopes=("read",),
        created_at=datetime.fromisoformat(CREATED_AT),
        expires_at=None,
        description=None,
        metadata=None,
    )
    assert SECRET not in repr(created)
    assert SECRET not in str(created)
    assert TOKEN_ID in repr(created)
    assert created.token == SECRET
    assert created.created_at.tzinfo == UTC


@pytest.mark.anyio
async def test_client_reprs_show_no_credentials() -> None:
    sync = AuthClient(f"http://svc:{SECRET}@auth.test:8000/", admin_token=ADMIN)
    async_client = AsyncAuthClient(BASE_URL, admin_token=ADMIN)
    for client in (sync, async_client):
        assert SECRET not in repr(client)
        assert ADMIN not in repr(client)
        assert ADMIN not in repr(client._config)
    assert repr(sync) == "AuthClient('http://auth.test:8000/')"
    await async_client.aclose()
    sync.close()


def test_a_token_given_as_base_url_is_not_echoed() -> None:
    with pytest.raises(AuthConfigError) as raised:
        AuthClient(SECRET)
    assert_clean(raised.value)


def test_an_admin_secret_of_any_shape_is_scrubbed(api: respx.MockRouter) -> None:
    # A password pasted where the admin token belongs is still a secret.
    password = "correct-horse-battery-staple"
    api.get("/auth/tokens").mock(return_value=error(401, "unauthorized", f"bad: {password}"))
    with pytest.raises(AuthError) as raised:
        AuthClient(BASE_URL, admin_token=password).list_tokens()
    assert password not in str(raised.value)
    assert password not in repr(raised.value.__dict__)


def test_a_validation_call_shows_no_token_in_its_repr() -> None:
    call = _api.validate(SECRET)
    assert SECRET not in repr(call)
    assert call.json == {"token": SECRET, "required_scopes": []}


def test_echoed_secrets_are_scrubbed_from_every_part_of_field_errors(
    api: respx.MockRouter,
) -> None:
    errors = [{"loc": ["body", SECRET, 0], "msg": "bad", "type": f"value_error.{SECRET}"}]
    api.get("/auth/tokens").mock(return_value=error(422, "invalid_request", "no", errors=errors))
    with pytest.raises(InvalidRequest) as raised:
        AuthClient(BASE_URL, admin_token=ADMIN).list_tokens()
    assert_clean(raised.value)
    assert raised.value.errors[0]["loc"] == ["body", "[redacted]", 0]


def test_credentials_in_base_url_stay_out_of_httpx_logs(
    api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    password = "s3cr3t-pw"
    route = api.post("/auth/validate").mock(return_value=valid())
    with AuthClient(f"http://svc:{password}@auth.test", admin_token=ADMIN) as client:
        client.validate(SECRET)
    assert any(r.name == "httpx" for r in caplog.records)  # httpx logged the request
    assert not any(password in r.getMessage() for r in caplog.records)
    # Still sent, as HTTP Basic: what httpx made of them when they were in the URL.
    request = route.calls.last.request
    assert request.headers["authorization"] == "Basic c3ZjOnMzY3IzdC1wdw=="
    assert request.url == f"{BASE_URL}/auth/validate"


def test_credentials_in_base_url_do_not_replace_the_admin_token(api: respx.MockRouter) -> None:
    route = api.get("/auth/tokens").mock(return_value=page())
    with AuthClient("http://svc:pw@auth.test", admin_token=ADMIN) as client:
        client.list_tokens()
    assert route.calls.last.request.headers["authorization"] == f"Bearer {ADMIN}"
