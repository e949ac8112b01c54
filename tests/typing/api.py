"""The public API as a user's code meets it, checked by mypy --strict (``make typecheck``).

Never run: type-checked only, as stamina's ``tests/typing/api.py`` is. Each
line that must be refused carries ``# type: ignore[code]``; mypy's
``warn_unused_ignores`` (on under --strict) fails the check if the error it
expects ever goes away, so a loosened signature cannot pass unnoticed.
"""

from __future__ import annotations

from datetime import datetime

import httpx

from amplify_auth_client import (
    AsyncAuthClient,
    AuditEntry,
    AuthClient,
    AuthServiceUnavailable,
    CacheStats,
    CreatedToken,
    Page,
    Reason,
    RotatedToken,
    TokenInfo,
    TokenStatus,
    ValidationResult,
    contract,
)
from amplify_auth_client.testing import FakeAuthServer, set_testing
from stateless_microservice import ActionRequest, Caller, StatelessAction, StatelessService


def sync_client() -> None:
    with AuthClient(
        "http://auth:8000",
        admin_token=contract.generate_token(),
        timeout=httpx.Timeout(2.0),
        cache_ttl=30,
        stale_if_error=60.0,
        subscribe_revocations=False,
    ) as auth:
        result: ValidationResult = auth.validate("amp_live_...", ["orders:read"])
        reason: Reason | None = result.reason
        expires: datetime | None = result.expires_at
        missing: tuple[str, ...] = result.missing_scopes
        if result:
            token_id: str | None = result.token_id
            del token_id
        created: CreatedToken = auth.create_token("svc", ["read"], ttl_days=30)
        listed: Page[TokenInfo] = auth.list_tokens(include_revoked=True)
        status: TokenStatus = auth.revoke_token(created.token_id).status
        trail: Page[AuditEntry] = auth.token_audit(created.token_id, limit=10)
        stats: CacheStats = auth.cache_stats()
        ratio: float = stats.hit_ratio
        rotated: RotatedToken = auth.rotate_token(created.token_id, grace_seconds=3600)
        successor: CreatedToken = rotated
        previous: TokenInfo = rotated.previous
        replaced_by: str | None = result.replaced_by
        auth.rotate_token(created.token_id, 3600)  # type: ignore[call-arg]
        del reason, expires, missing, listed, status, trail, ratio, successor, previous
        del replaced_by

    AuthClient("http://auth:8000", cache_tll=30)  # type: ignore[call-arg]
    AuthClient("http://auth:8000", cache_ttl="30")  # type: ignore[arg-type]
    AuthClient("http://auth:8000", 30.0)  # type: ignore[arg-type, call-arg]


async def async_client() -> None:
    async with AsyncAuthClient(cache_size=0) as auth:
        result: ValidationResult = await auth.validate("amp_live_...")
        created: CreatedToken = await auth.create_token("svc", {"read"})
        extended: TokenInfo = await auth.extend_token(created.token_id, 7)
        rotated: RotatedToken = await auth.rotate_token(created.token_id, grace_seconds=0)
        del result, extended, rotated
    AsyncAuthClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    AsyncAuthClient(transport=httpx.HTTPTransport())  # type: ignore[arg-type]


def testing() -> None:
    server = FakeAuthServer()
    reader = server.add_token("reporting", ["orders:read"])
    with set_testing(True), server.client(cache_ttl=0) as auth:
        assert auth.validate(reader.token, ["orders:read"])
    server.client(cache_tll=0)  # type: ignore[call-arg]
    asynchronous: AsyncAuthClient = server.async_client(max_retries=0)
    del asynchronous


def errors() -> None:
    try:
        AuthClient().validate("amp_live_...")
    except AuthServiceUnavailable as exc:
        status: int | None = exc.status_code
        del status


def contract_rules() -> None:
    ok: bool = contract.is_scope("orders:read") and contract.is_token_id("tok_0123456789abcdef")
    missing: tuple[str, ...] = contract.missing_scopes({"read"}, ["read", "write"])
    bearer: str | None = contract.bearer_token("Bearer abc")
    del ok, missing, bearer


class Orders(StatelessService):
    name = "orders"

    def actions(self) -> list[StatelessAction]:
        return [
            StatelessAction(name="health", path="/health", method="GET", handler=self.health),
            StatelessAction(
                name="create", path="/orders", handler=self.create, required_scopes=["write"]
            ),
        ]

    def health(self, request: ActionRequest) -> dict[str, str]:
        return {"status": "healthy"}

    async def create(self, request: ActionRequest, caller: Caller) -> dict[str, object]:
        return {"by": caller.name, "scopes": list(caller.scopes)}
