"""Test helpers for code that uses the SDK: an in-memory auth server, and instant retries.

Test your service against :class:`FakeAuthServer` instead of patching the
SDK: it speaks the real HTTP contract (same paths, status codes and JSON
bodies as the AMPLIfy Auth server) through an :class:`httpx.MockTransport`,
which both :class:`~amplify_auth_client.AuthClient` and
:class:`~amplify_auth_client.AsyncAuthClient` accept as ``transport=``::

    from amplify_auth_client.testing import FakeAuthServer

    def test_orders_need_a_scope():
        server = FakeAuthServer()
        reader = server.add_token("reporting", ["orders:read"])
        with server.client() as auth:
            assert auth.validate(reader.token, ["orders:read"])
            assert not auth.validate(reader.token, ["orders:write"])

Set ``server.available = False`` to simulate an outage (every request gets
503), and call :func:`set_testing` so that the client's retries do not wait.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, TypeGuard, Unpack
from urllib.parse import unquote

import httpx

from amplify_auth_client._async_client import AsyncAuthClient
from amplify_auth_client._client import AuthClient
from amplify_auth_client._models import CreatedToken
from amplify_auth_client._options import ClientOptions
from amplify_auth_client._testing import is_testing, set_testing
from amplify_auth_client.contract import (
    ADMIN_SCOPE,
    DEFAULT_GRACE_SECONDS,
    DEFAULT_PAGE_SIZE,
    IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENCY_WINDOW,
    IDEMPOTENT_REPLAYED_HEADER,
    MAX_BODY_BYTES,
    MAX_BULK_IDS,
    MAX_CURSOR_LENGTH,
    MAX_DESCRIPTION_LENGTH,
    MAX_GRACE_SECONDS,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_METADATA_ITEMS,
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_VALUE_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PAGE_SIZE,
    MAX_SCOPE_LENGTH,
    MAX_SCOPES,
    MAX_TOKEN_FIELD,
    MAX_TTL_DAYS,
    MAX_USAGE_COUNT,
    MAX_USAGE_HITS,
    MIN_FINISH_WHEN_IDLE_SECONDS,
    OTHER_OWNER,
    TOKEN_PREFIX,
    TOKENS_MANAGE_SCOPE,
    USAGE_DAYS,
    Cursors,
    TokenStatus,
    bearer_token,
    create_fingerprint,
    delegation_refusal,
    generate_token,
    hash_idempotency_key,
    hash_token,
    is_idempotency_key,
    is_label,
    is_owner,
    is_scope,
    is_text,
    is_token_id,
    iso,
    manager_reach,
    missing_scopes,
    new_token_id,
    rotate_fingerprint,
    rotation_conflict,
    rotation_times,
    status_of,
    token_is_well_formed,
)

__all__ = ["FakeAuthServer", "is_testing", "set_testing"]

_TRUE: Final = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE: Final = frozenset({"false", "0", "no", "off", "f", "n"})


@dataclass(frozen=True, slots=True)
class _Record:
    id: str
    token_hash: str
    name: str
    scopes: tuple[str, ...]
    description: str | None
    metadata: dict[str, str] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    owner: str | None = None
    last_used_at: datetime | None = None
    replaced_by: str | None = None
    rotated_from: str | None = None
    finish_when_idle_seconds: int | None = None

    def status(self, now: datetime) -> TokenStatus:
        return status_of(self.revoked_at, self.expires_at, now)


#: What a route answers: status, JSON body, headers.
_Answer = tuple[int, Any, dict[str, str]]


class _Refusal(Exception):
    """An error answer, as the real server's error handlers write it."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.body: dict[str, Any] = {"error": code, "detail": detail}
        if errors is not None:
            self.body["errors"] = errors
        self.headers = dict(headers or {})


def _reused_key() -> _Refusal:
    return _Refusal(
        422,
        "idempotency_key_reused",
        "this Idempotency-Key was sent earlier with another body: a key names "
        "one create; send a new key for a new create",
        errors=[
            {
                "loc": ["header", IDEMPOTENCY_KEY_HEADER],
                "msg": "Used earlier with another body",
                "type": "idempotency_key_reused",
            }
        ],
    )


def _invalid(loc: list[str | int], msg: str, kind: str) -> _Refusal:
    return _Refusal(
        422,
        "invalid_request",
        "the request body does not match the schema",
        errors=[{"loc": loc, "msg": msg, "type": kind}],
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


class FakeAuthServer:
    """An in-memory AMPLIfy Auth server behind an httpx transport.

    ``admin_token`` (minted when not given) is registered with the ``admin``
    scope, and :meth:`client` passes it on. ``now`` is the wall clock the
    server judges expiry by: pass your own to test expiry without sleeping,
    moving it forward from the real time (the SDK refuses a "valid" for a
    token that has expired by its own clock, as it would from a broken server).
    Every request the server received is in :attr:`requests`. Thread-safe, so
    it serves a multi-threaded test as the real server would.

    What the real server does on its own, between requests, is not done here:
    no webhooks, no ``token.expiring`` scan, and a rotation's
    ``finish_when_idle_seconds`` is stored and shown but ends no grace.
    """

    #: Where :meth:`client` points; no network is involved.
    base_url: Final = "http://auth.test"

    def __init__(
        self,
        *,
        admin_token: str | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}
        self._by_hash: dict[str, str] = {}
        self._audit: list[dict[str, Any]] = []
        #: (admin token id, key hash) -> (body fingerprint, token id, when).
        self._idempotency: dict[tuple[str, str], tuple[str, str, datetime]] = {}
        #: Each audit entry's owner, by entry id (not part of the entry's body).
        self._audit_owner: dict[int, str | None] = {}
        #: Each token's uses per UTC day (the server's ``token_usage``).
        self._usage: dict[str, dict[date, int]] = {}
        #: The token the request being answered manages with, once known.
        self._actor: _Record | None = None
        self._now = now or (lambda: datetime.now(UTC))
        self._cursors = Cursors(secrets.token_bytes(16))
        #: Every request received, in order (validation bodies hold raw tokens:
        #: fine for a test double, which is all this is).
        self.requests: list[httpx.Request] = []
        #: False: answer every request with 503, as a server without its database does.
        self.available = True
        # Named as the real server names the admin token it registers at
        # start-up: from its file, or from AUTH_ADMIN_TOKEN by its hash.
        self.admin_token = admin_token or generate_token()
        fingerprint = hash_token(self.admin_token)[:8]
        admin = self._insert(
            "admin (bootstrap)"
            if admin_token is None
            else f"admin (AUTH_ADMIN_TOKEN sha256:{fingerprint})",
            (ADMIN_SCOPE,),
            None,
            "registered at start-up",
            None,
            token=self.admin_token,
            action="register",
        )
        #: The admin token's id, the ``actor_id`` of audit entries it causes.
        self.admin_token_id = admin.id

    def __repr__(self) -> str:
        return f"FakeAuthServer(tokens={len(self._records)})"

    # -- for tests: arrange the world directly --------------------------------

    def add_token(
        self,
        name: str,
        scopes: Collection[str],
        *,
        expires_at: datetime | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        owner: str | None = None,
    ) -> CreatedToken:
        """Mint a token without going through HTTP (``expires_at`` may be in the past;
        ``owner`` names its team, and with ``tokens:manage`` makes it a delegated admin)."""
        if owner is not None and not is_owner(owner):
            raise ValueError(f"{owner!r} is not an owner (see contract.OWNER_PATTERN)")
        with self._lock:
            token = generate_token()
            record = self._insert(
                name,
                tuple(dict.fromkeys(scopes)),
                expires_at,
                description,
                dict(metadata) if metadata is not None else None,
                token=token,
                owner=owner,
            )
        return _created(token, record)

    def revoke(self, token_id: str) -> None:
        """Revoke a token without going through HTTP."""
        with self._lock:
            record = self._records[token_id]
            if record.revoked_at is None:
                now = self._now()
                self._records[token_id] = replace(record, revoked_at=now)
                self._log(None, "revoke", token_id, {"revoked_at": _iso(now)})

    def validation_requests(self) -> int:
        """How many ``POST /auth/validate`` requests arrived: what a cache is meant to save."""
        with self._lock:
            return sum(1 for r in self.requests if r.url.path == "/auth/validate")

    # -- wiring --------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """A transport for both sync and async httpx clients (and so for both SDK clients)."""
        return httpx.MockTransport(self.handle)

    def client(self, **options: Unpack[ClientOptions]) -> AuthClient:
        """An :class:`AuthClient` wired to this server, with its admin token, and ``options``."""
        options.setdefault("admin_token", self.admin_token)
        return AuthClient(self.base_url, transport=self.transport(), **options)

    def async_client(self, **options: Unpack[ClientOptions]) -> AsyncAuthClient:
        """An :class:`AsyncAuthClient` wired to this server, with its admin token."""
        options.setdefault("admin_token", self.admin_token)
        return AsyncAuthClient(self.base_url, transport=self.transport(), **options)

    # -- the HTTP contract ------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as the real server would."""
        with self._lock:
            self.requests.append(request)
            try:
                status, body, headers = self._dispatch(request)
            except _Refusal as refusal:
                status, body, headers = refusal.status, refusal.body, refusal.headers
        if status == 204:
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    def _dispatch(self, request: httpx.Request) -> _Answer:
        # In the order of the server's middleware, outermost first.
        if TOKEN_PREFIX in unquote(request.url.query.decode("latin-1")):
            raise _Refusal(
                400,
                "token_in_url",
                "a token does not belong in a URL (RFC 6750 section 5.3): send it in the "
                "Authorization header or the JSON body, and consider this one exposed",
            )
        if not self.available:
            raise _Refusal(
                503,
                "unavailable",
                "the token database is unreachable; retry shortly",
                headers={"Retry-After": "1"},
            )
        if len(request.content) > MAX_BODY_BYTES:
            raise _Refusal(413, "payload_too_large", f"request body over {MAX_BODY_BYTES} bytes")
        if request.method == "POST" and request.url.path == "/auth/validate":
            _check_query(request, ())  # the validation fast path takes none, before its body
        if (
            request.content
            and request.method in ("POST", "PUT", "PATCH")
            and request.url.path.startswith("/auth/")
        ):
            self._strict_body(request)
        parts = request.url.path.strip("/").split("/")
        allowed = []
        self._actor = None
        for method, template, handler, declared in _ROUTES:
            params = _match(template, parts)
            if params is None:
                continue
            if method == request.method:
                _check_query(request, declared)
                try:
                    return handler(self, request, *params)
                except _Refusal as refusal:
                    self._audit_refusal(refusal, _ATTEMPTS.get(handler, ""), params)
                    raise
            allowed.append(method)
        if allowed:  # the path exists, with other methods
            raise _Refusal(
                405,
                "method_not_allowed",
                "Method Not Allowed",
                headers={"Allow": ", ".join(sorted(allowed))},
            )
        raise _Refusal(404, "not_found", "Not Found")

    # -- the routes: each as the real server orders its checks -----------------

    def _validate_route(self, request: httpx.Request) -> _Answer:
        return 200, self._validate(request), {}

    def _create_route(self, request: httpx.Request) -> _Answer:
        actor = self._admin(request)
        key = self._idempotency_key(request)
        body, replayed = self._create(request, actor, key)
        headers = {"Cache-Control": "no-store"}
        if replayed:
            headers[IDEMPOTENT_REPLAYED_HEADER] = "true"
        return (200 if replayed else 201), body, headers

    @staticmethod
    def _idempotency_key(request: httpx.Request) -> str | None:
        key = request.headers.get(IDEMPOTENCY_KEY_HEADER)
        if key is None or is_idempotency_key(key):
            return key
        # As the server's header check words it, never echoing the key.
        refusal = _invalid(
            ["header", IDEMPOTENCY_KEY_HEADER],
            "String should have at most 255 characters"
            if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH
            else "String should match pattern",
            "string_too_long"
            if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH
            else "string_pattern_mismatch",
        )
        refusal.body["detail"] = (
            f"{IDEMPOTENCY_KEY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII "
            "characters, without spaces (a UUID, say); leave it out to create without one"
        )
        raise refusal

    def _list_route(self, request: httpx.Request) -> _Answer:
        actor = self._admin(request)
        params = request.url.params
        limit = _page_size(params)
        include = self._flag(request, "all")
        status = params.get("status")
        if status is not None and status not in _STATUSES:
            raise _invalid(["query", "status"], "Input should be a listing status", "literal_error")
        if include and status not in (None, "all"):
            raise _invalid(["query", "all"], "Conflicts with status", "value_error")
        name = params.get("name")
        if name is not None and not (name and is_text(name, MAX_NAME_LENGTH)):
            raise _invalid(["query", "name"], "String should match pattern", "string_type")
        scope = params.get("scope")
        if scope is not None and not is_scope(scope):
            raise _invalid(["query", "scope"], "String should match pattern", "string_type")
        within = _optional_int(params, "expires_within_days", 0, MAX_TTL_DAYS)
        owner = params.get("owner")
        if owner is not None and not is_owner(owner):
            raise _invalid(["query", "owner"], "String should match pattern", "string_type")
        filters: dict[str, Any] = {
            "status": "all" if include else status or "active",
            "name": name,
            "scope": scope,
            "expires_within_days": within,
            "owner": self._may_list(actor, owner),
        }
        for usage_filter in _USAGE_FILTERS:
            days = _optional_int(params, usage_filter, 1, MAX_TTL_DAYS)
            if days is not None:  # left out unset, as the server's cursors leave it
                filters[usage_filter] = days
        now = self._now()
        matching = [r for r in self._newest_first() if _matches(r, filters, now)]
        after = self._position(params, "tokens", filters)
        if after is not None:
            position = (datetime.fromisoformat(after[0]), after[1])
            matching = [r for r in matching if (r.created_at, r.id) < position]
        page, more = matching[:limit], len(matching) > limit
        cursor = None
        if more:
            last = page[-1]
            cursor = self._cursors.make("tokens", [_iso(last.created_at), last.id], filters)
        items = [self._record_body(r, now) for r in page]
        return 200, {"items": items, "next_cursor": cursor}, {}

    def _newest_first(self) -> list[_Record]:
        return sorted(self._records.values(), key=lambda r: (r.created_at, r.id), reverse=True)

    def _position(
        self, params: httpx.QueryParams, kind: str, filters: Mapping[str, object]
    ) -> list[Any] | None:
        cursor = params.get("cursor")
        if cursor is None:
            return None
        if not 1 <= len(cursor) <= MAX_CURSOR_LENGTH or not _CURSOR.fullmatch(cursor):
            raise _invalid(["query", "cursor"], "String should match pattern", "string_type")
        try:
            return self._cursors.read(cursor, kind, filters)
        except ValueError as exc:
            raise _Refusal(
                422,
                "invalid_request",
                f"the cursor cannot be used: {exc}; start again without one",
                errors=[
                    {"loc": ["query", "cursor"], "msg": "Invalid cursor", "type": "cursor_invalid"}
                ],
            ) from None

    def _get_route(self, request: httpx.Request, token_id: str) -> _Answer:
        actor = self._admin(request)
        record, now = self._known(token_id, actor), self._now()
        oldest = (now - timedelta(days=USAGE_DAYS - 1)).date()
        days = sorted(self._usage.get(record.id, {}).items())
        usage = [{"day": day.isoformat(), "count": n} for day, n in days if day >= oldest]
        return 200, {**self._record_body(record, now), "usage": usage}, {}

    def _bulk_revoke_route(self, request: httpx.Request) -> _Answer:
        actor = self._admin(request)
        ids, wanted, dry_run = _bulk_request(self._json(request))
        now = self._now()
        if ids is None:
            filters = {
                **wanted,
                "status": "active",
                "owner": self._may_list(actor, wanted["owner"]),
            }
            matching = [r.id for r in self._newest_first() if _matches(r, filters, now)]
            if not dry_run:
                for token_id in matching:
                    self._change(self._records[token_id], actor, "revoke", revoked_at=now)
            answer: dict[str, Any] = {"revoked_count": len(matching), "revoked": None,
                      "already_revoked": None, "not_found": None}  # fmt: skip
            return 200, answer, {}
        revoked, already, missing = [], [], []
        for token_id in ids:
            record = self._visible(actor, self._records.get(token_id))
            if record is None:
                missing.append(token_id)
            elif record.revoked_at is not None:
                already.append(token_id)
            else:
                self._change(record, actor, "revoke", revoked_at=now)
                revoked.append(token_id)
        if self._limit(actor) is not None:  # audited as a single revoke's 404 would be
            for token_id in missing:
                details = {"attempt": "revoke_tokens", "status": 404, "error": "not_found"}
                self._log(actor, "refused", token_id, details, owner=actor.owner)
        answer = {"revoked_count": len(revoked), "revoked": revoked,
                  "already_revoked": already, "not_found": missing}  # fmt: skip
        return 200, answer, {}

    def _revoke_route(self, request: httpx.Request, token_id: str) -> _Answer:
        actor = self._admin(request)
        record, now = self._known(token_id, actor), self._now()
        if record.revoked_at is None:
            record = self._change(record, actor, "revoke", revoked_at=now)
        return 200, self._record_body(record, now), {}

    def _extend_route(self, request: httpx.Request, token_id: str) -> _Answer:
        actor = self._admin(request)
        days = self._extend_days(request)
        record, now = self._known(token_id, actor), self._now()
        if record.revoked_at is not None:
            raise _Refusal(
                409, "conflict", f"token {record.id} is revoked; a revoked token cannot be extended"
            )
        if record.replaced_by is not None:
            raise _Refusal(
                409,
                "conflict",
                f"token {record.id} was rotated (replaced by {record.replaced_by}); "
                f"extend {record.replaced_by} instead",
            )
        if record.expires_at is None:
            raise _Refusal(
                409, "conflict", f"token {record.id} never expires; there is nothing to extend"
            )
        new_expiry = max(record.expires_at, now) + timedelta(days=days)
        if new_expiry > now + timedelta(days=MAX_TTL_DAYS):
            raise _Refusal(
                409,
                "conflict",
                f"token {record.id} would then expire more than {MAX_TTL_DAYS} days from now",
            )
        bound = None if self._limit(actor) is None else actor.expires_at
        if bound is not None and new_expiry > bound:
            raise _Refusal(
                403, "expires_after_manager", "a token can extend tokens only up to its own expiry"
            )
        record = self._change(record, actor, "extend", expires_at=new_expiry)
        return 200, self._record_body(record, now), {}

    def _rotate_route(self, request: httpx.Request, token_id: str) -> _Answer:
        actor = self._admin(request)
        key = self._idempotency_key(request)
        grace, idle = self._rotate_body(request)
        record, now = self._known(token_id, actor), self._now()
        remembered = fingerprint = None
        if key is not None:
            # As the server does: the keys of creates and rotations are one table.
            self._idempotency = {
                k: v for k, v in self._idempotency.items() if v[2] > now - IDEMPOTENCY_WINDOW
            }
            remembered = (actor.id, hash_idempotency_key(key))
            fingerprint = rotate_fingerprint(record.id, grace, idle)
            earlier = self._idempotency.get(remembered)
            if earlier is not None:
                if earlier[0] != fingerprint:
                    raise _reused_key()
                body = self._rotated_body(None, self._records[earlier[1]], record, now)
                return 200, body, {"Cache-Control": "no-store", IDEMPOTENT_REPLAYED_HEADER: "true"}
        conflict = rotation_conflict(record.id, record.status(now), record.replaced_by)
        if conflict is not None:
            raise _Refusal(409, "conflict", conflict)
        expires_at, deadline = rotation_times(
            now=now, created_at=record.created_at, expires_at=record.expires_at,
            grace_seconds=grace,
        )  # fmt: skip
        limit = self._limit(actor)
        refusal = delegation_refusal(
            held=actor.scopes,
            reach="*" if limit is None else limit,
            manager_expires_at=actor.expires_at,
            owner=record.owner,
            scopes=record.scopes,
            expires_at=expires_at,
        )
        if refusal is not None:
            raise _Refusal(403, *refusal)
        token = generate_token()
        successor = self._insert(
            record.name, record.scopes, expires_at, record.description, record.metadata,
            token=token, actor=actor, owner=record.owner, rotated_from=record.id,
        )  # fmt: skip
        values: dict[str, Any] = {"replaced_by": successor.id, "finish_when_idle_seconds": idle}
        values["revoked_at" if grace == 0 else "expires_at"] = now if grace == 0 else deadline
        updated = replace(record, **values)
        self._records[record.id] = updated
        details = {
            **{k: _iso(v) if isinstance(v, datetime) else v for k, v in values.items()},
            "grace_seconds": grace,
            "previous_expires_at": _iso(record.expires_at),
        }
        self._log(actor, "rotate", record.id, details, owner=record.owner)
        if remembered is not None and fingerprint is not None:
            self._idempotency[remembered] = (fingerprint, successor.id, now)
        return (
            201,
            self._rotated_body(token, successor, updated, now),
            {"Cache-Control": "no-store"},
        )

    def _rotate_body(self, request: httpx.Request) -> tuple[int, int | None]:
        body = self._json(request)
        if set(body) - {"grace_seconds", "finish_when_idle_seconds"}:
            # Not named: an unknown field's name may be a pasted secret.
            raise _invalid(["body", "*"], "Extra inputs are not permitted", "extra_forbidden")
        grace = body.get("grace_seconds", DEFAULT_GRACE_SECONDS)
        if not _whole(grace, 0, MAX_GRACE_SECONDS):
            raise _invalid(
                ["body", "grace_seconds"], f"Input should be between 0 and {MAX_GRACE_SECONDS}",
                "range",
            )  # fmt: skip
        idle = body.get("finish_when_idle_seconds")
        if idle is not None and not _whole(idle, MIN_FINISH_WHEN_IDLE_SECONDS, MAX_GRACE_SECONDS):
            raise _invalid(
                ["body", "finish_when_idle_seconds"],
                f"Input should be between {MIN_FINISH_WHEN_IDLE_SECONDS} and {MAX_GRACE_SECONDS}",
                "range",
            )
        if idle is not None and idle > grace:
            raise _invalid(
                ["body"], "finish_when_idle_seconds must not exceed grace_seconds", "value_error"
            )
        return grace, idle

    def _rotated_body(
        self, token: str | None, successor: _Record, previous: _Record, now: datetime
    ) -> dict[str, Any]:
        return {
            **self._created_body(token, successor),
            "rotated_from": previous.id,
            "previous": self._record_body(previous, now),
        }

    def _token_audit_route(self, request: httpx.Request, token_id: str) -> _Answer:
        actor = self._admin(request)
        record = self._known(token_id, actor)
        return 200, self._audit_page(request, record.id, self._limit(actor)), {}

    def _audit_route(self, request: httpx.Request) -> _Answer:
        actor = self._admin(request)
        return 200, self._audit_page(request, None, self._limit(actor)), {}

    # -- validation ----------------------------------------------------------

    def _validate(self, request: httpx.Request) -> dict[str, Any]:
        # The real handler validates the body itself, so its locations have no "body".
        body = self._json(request, [])
        token = body.get("token")
        if not isinstance(token, str):
            raise _invalid(["token"], "Field required", "missing")
        if len(token) > MAX_TOKEN_FIELD:
            raise _invalid(
                ["token"], "String should have at most 1024 characters", "string_too_long"
            )
        required = body.get("required_scopes", [])
        if not isinstance(required, list) or len(required) > MAX_SCOPES:
            raise _invalid(["required_scopes"], "Input should be a valid list", "list_type")
        for index, scope in enumerate(required):
            if not (isinstance(scope, str) and len(scope) <= MAX_SCOPE_LENGTH):
                raise _invalid(
                    ["required_scopes", index], "Input should be a valid string", "string_type"
                )
        _no_duplicate_keys(request.content)
        return self._judge(token, required)

    def _judge(self, token: str, required: list[str]) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "valid": False,
            "scopes": [],
            "token_id": None,
            "name": None,
            "owner": None,
            "reason": None,
            "missing_scopes": [],
            "expires_at": None,
            "replaced_by": None,
        }
        if not token_is_well_formed(token):
            return {**answer, "reason": "malformed"}
        token_id = self._by_hash.get(hash_token(token))
        if token_id is None:
            return {**answer, "reason": "unknown"}
        record = self._records[token_id]
        answer.update(
            token_id=record.id,
            name=record.name,
            owner=record.owner,
            expires_at=_iso(record.expires_at),
            replaced_by=record.replaced_by,
        )
        status = record.status(self._now())
        if status != "active":
            return {**answer, "reason": status}
        missing = list(missing_scopes(record.scopes, required))
        self._use(record, 1)
        if missing:
            return {
                **answer,
                "reason": "insufficient_scope",
                "scopes": list(record.scopes),
                "missing_scopes": missing,
            }
        return {**answer, "valid": True, "scopes": list(record.scopes)}

    def _use(self, record: _Record, count: int) -> None:
        """Count ``count`` uses of ``record`` now. Written at once: the fake is a server
        whose ``USAGE_FLUSH_SECONDS`` is zero."""
        now = self._now()
        if record.last_used_at is None or record.last_used_at < now:
            self._records[record.id] = replace(record, last_used_at=now)
        days = self._usage.setdefault(record.id, {})
        days[now.date()] = days.get(now.date(), 0) + count
        oldest = (now - timedelta(days=USAGE_DAYS - 1)).date()
        for day in [d for d in days if d < oldest]:
            del days[day]

    def _usage_route(self, request: httpx.Request) -> _Answer:
        for token_hash, count in _usage_report(self._json(request)):
            token_id = self._by_hash.get(token_hash)
            if token_id is None:
                continue
            record = self._records[token_id]
            if record.status(self._now()) == "active":
                self._use(record, count)
        return 204, None, {}

    # -- management ----------------------------------------------------------

    def _admin(self, request: httpx.Request) -> _Record:
        header = request.headers.get("authorization")
        challenge = {"WWW-Authenticate": 'Bearer realm="amplify-auth"'}
        credentials = bearer_token(header)
        if header is None:
            raise _Refusal(
                401,
                "unauthorized",
                "management needs an admin token: send `Authorization: Bearer <token>` "
                "with a token holding the admin scope",
                headers=challenge,
            )
        if credentials is None:
            raise _Refusal(
                401,
                "unauthorized",
                "the Authorization header must be `Bearer <admin token>`",
                headers=challenge,
            )
        verdict = self._judge(credentials, [])
        if not verdict["valid"]:
            raise _Refusal(
                401,
                "unauthorized",
                f"the admin token is not valid ({verdict['reason']})",
                headers=challenge,
            )
        record = self._records[verdict["token_id"]]
        self._actor = record
        if manager_reach(record.scopes, record.owner) is None:
            raise _Refusal(
                403,
                "forbidden",
                "this token lacks the scope management requires: admin (every token) or "
                "tokens:manage (the tokens of its owner)",
            )
        return record

    # -- delegation (the server's amplify_auth_server.authz) --------------------

    @staticmethod
    def _limit(actor: _Record) -> str | None:
        """The owner ``actor`` is limited to; None for a global admin."""
        reach = manager_reach(actor.scopes, actor.owner)
        return None if reach == "*" else reach

    def _visible(self, actor: _Record, record: _Record | None) -> _Record | None:
        limit = self._limit(actor)
        if record is None or (limit is not None and record.owner != limit):
            return None
        return record

    def _may_list(self, actor: _Record, owner: str | None) -> str | None:
        limit = self._limit(actor)
        if limit is None:
            return owner
        if owner is not None and owner != limit:
            raise _Refusal(
                403, OTHER_OWNER, f"this token manages the tokens of owner {limit!r} only"
            )
        return limit

    def _audit_refusal(self, refusal: _Refusal, attempt: str, params: list[str]) -> None:
        """Audit a valid token's refusal as the server does: a 403, or a delegated 404."""
        actor = self._actor
        if actor is None or refusal.status not in (403, 404):
            return
        if refusal.status == 404 and self._limit(actor) is None:
            return
        token_id = params[0] if params and is_token_id(params[0]) else None
        details = {"attempt": attempt, "status": refusal.status, "error": refusal.body["error"]}
        self._log(actor, "refused", token_id, details, owner=actor.owner)

    def _create(
        self, request: httpx.Request, actor: _Record, key: str | None
    ) -> tuple[dict[str, Any], bool]:
        """The create's answer, and whether it replays an earlier one (by ``key``)."""
        body = self._json(request)
        extra = set(body) - {"name", "scopes", "ttl_days", "description", "metadata", "owner"}
        if extra:
            # Not named: an unknown field's name may be a pasted secret.
            raise _invalid(["body", "*"], "Extra inputs are not permitted", "extra_forbidden")
        # The contract's rules, checked in the model's field order: refused,
        # never normalised, so that what is stored is what was sent.
        name = body.get("name")
        if not is_label(name, MAX_NAME_LENGTH):
            raise _invalid(["body", "name"], "String should match pattern", "string_type")
        scopes = body.get("scopes")
        if not isinstance(scopes, list) or not 1 <= len(scopes) <= MAX_SCOPES:
            raise _invalid(["body", "scopes"], "List should have 1 to 50 items", "too_short")
        for i, scope in enumerate(scopes):
            if not is_scope(scope):
                raise _invalid(
                    ["body", "scopes", i], "String should match pattern", "string_pattern_mismatch"
                )
        if len(set(scopes)) != len(scopes):
            raise _invalid(["body", "scopes"], "a scope is listed twice", "value_error")
        ttl_days = body.get("ttl_days")
        if ttl_days is not None and not _whole(ttl_days, 1, MAX_TTL_DAYS):
            raise _invalid(
                ["body", "ttl_days"], f"Input should be between 1 and {MAX_TTL_DAYS}", "range"
            )
        description = body.get("description")
        if description is not None and not is_text(description, MAX_DESCRIPTION_LENGTH):
            raise _invalid(["body", "description"], "String should match pattern", "string_type")
        metadata = body.get("metadata")
        if metadata is not None:
            self._check_metadata(metadata)
        owner = body.get("owner")
        if owner is not None and not is_owner(owner):
            raise _invalid(["body", "owner"], "String should match pattern", "string_type")
        now = self._now()
        expires_at = None if ttl_days is None else now + timedelta(days=ttl_days)
        limit = self._limit(actor)
        refusal = delegation_refusal(
            held=actor.scopes,
            reach="*" if limit is None else limit,
            manager_expires_at=actor.expires_at,
            owner=owner,
            scopes=scopes,
            expires_at=expires_at,
        )
        if refusal is not None:
            raise _Refusal(403, *refusal)
        owner = owner if limit is None else limit
        if owner is None and TOKENS_MANAGE_SCOPE in scopes:
            raise _Refusal(
                422,
                "invalid_request",
                "a token with tokens:manage must have an owner: delegation names whom it is for",
                errors=[
                    {
                        "loc": ["body", "owner"],
                        "msg": "Required with tokens:manage",
                        "type": "missing",
                    }
                ],
            )
        remembered = None
        if key is not None:
            # As the server does: per admin token, by hash, for the window.
            self._idempotency = {
                k: v for k, v in self._idempotency.items() if v[2] > now - IDEMPOTENCY_WINDOW
            }
            remembered = (actor.id, hash_idempotency_key(key))
            fingerprint = create_fingerprint(
                name, scopes, ttl_days, description, metadata, body.get("owner")
            )
            earlier = self._idempotency.get(remembered)
            if earlier is not None:
                if earlier[0] != fingerprint:
                    raise _reused_key()
                return self._created_body(None, self._records[earlier[1]]), True
        token = generate_token()
        record = self._insert(
            name,
            tuple(scopes),
            expires_at,
            description,
            metadata,
            token=token,
            actor=actor,
            owner=owner,
        )
        if remembered is not None:
            self._idempotency[remembered] = (fingerprint, record.id, now)
        return self._created_body(token, record), False

    @staticmethod
    def _created_body(token: str | None, record: _Record) -> dict[str, Any]:
        return {
            "token": token,
            "token_id": record.id,
            "name": record.name,
            "scopes": list(record.scopes),
            "created_at": _iso(record.created_at),
            "expires_at": _iso(record.expires_at),
            "description": record.description,
            "metadata": record.metadata,
            "owner": record.owner,
        }

    @staticmethod
    def _check_metadata(metadata: object) -> None:
        # Keys are never echoed in a location (a key may be a pasted secret):
        # "*" stands for any of them, as the server writes it.
        if not isinstance(metadata, dict):
            raise _invalid(["body", "metadata"], "Input should be a valid dictionary", "dict_type")
        if len(metadata) > MAX_METADATA_ITEMS:
            raise _invalid(
                ["body", "metadata"], "Dictionary should have at most 20 items", "too_long"
            )
        for key, value in metadata.items():
            if not is_label(key, MAX_METADATA_KEY_LENGTH):
                raise _invalid(
                    ["body", "metadata", "*", "[key]"], "String should match pattern", "string_type"
                )
            if not is_text(value, MAX_METADATA_VALUE_LENGTH):
                raise _invalid(
                    ["body", "metadata", "*"], "String should match pattern", "string_type"
                )

    def _extend_days(self, request: httpx.Request) -> int:
        body = self._json(request)
        extra = set(body) - {"days"}
        if extra:
            # Not named: an unknown field's name may be a pasted secret.
            raise _invalid(["body", "*"], "Extra inputs are not permitted", "extra_forbidden")
        days = body.get("days")
        if days is None:
            raise _invalid(["body", "days"], "Field required", "missing")
        if not _whole(days, 1, MAX_TTL_DAYS):
            raise _invalid(
                ["body", "days"], f"Input should be between 1 and {MAX_TTL_DAYS}", "range"
            )
        return days

    def _audit_page(
        self, request: httpx.Request, token_id: str | None, owner: str | None
    ) -> dict[str, Any]:
        params = request.url.params
        limit = _page_size(params)
        action, actor = params.get("action"), params.get("actor")
        if action is not None and not _ACTION.fullmatch(action):
            raise _invalid(["query", "action"], "String should match pattern", "string_type")
        if actor is not None and not (actor == "system" or is_token_id(actor)):
            raise _invalid(["query", "actor"], "String should match pattern", "string_type")
        since, until = _aware(params, "since"), _aware(params, "until")
        filters = {
            "token_id": token_id,
            "action": action,
            "actor": actor,
            "since": None if since is None else _iso(since),
            "until": None if until is None else _iso(until),
            "owner": owner,
        }
        entries = [
            e
            for e in reversed(self._audit)
            if (token_id is None or e["token_id"] == token_id)
            and (owner is None or self._audit_owner[e["id"]] == owner)
            and (action is None or e["action"] == action)
            and (actor is None or e["actor_id"] == actor)
            and (since is None or datetime.fromisoformat(e["at"]) >= since)
            and (until is None or datetime.fromisoformat(e["at"]) < until)
        ]
        after = self._position(params, "audit", filters)
        if after is not None:
            entries = [e for e in entries if e["id"] < after[0]]
        page = entries[:limit]
        cursor = (
            self._cursors.make("audit", [page[-1]["id"]], filters) if len(entries) > limit else None
        )
        return {"items": page, "next_cursor": cursor}

    # -- the store -----------------------------------------------------------

    def _insert(
        self,
        name: str,
        scopes: tuple[str, ...],
        expires_at: datetime | None,
        description: str | None,
        metadata: dict[str, str] | None,
        *,
        token: str,
        actor: _Record | None = None,
        action: str = "create",
        owner: str | None = None,
        rotated_from: str | None = None,
    ) -> _Record:
        record = _Record(
            id=new_token_id(),
            token_hash=hash_token(token),
            name=name,
            scopes=scopes,
            description=description,
            metadata=metadata,
            created_at=self._now(),
            expires_at=expires_at,
            revoked_at=None,
            owner=owner,
            rotated_from=rotated_from,
        )
        self._records[record.id] = record
        self._by_hash[record.token_hash] = record.id
        details: dict[str, Any] = {
            "name": name,
            "scopes": list(scopes),
            "expires_at": _iso(expires_at),
        }
        if rotated_from is not None:
            details["rotated_from"] = rotated_from
        self._log(actor, action, record.id, details, owner=owner)
        return record

    def _change(self, record: _Record, actor: _Record, action: str, **values: datetime) -> _Record:
        updated = replace(record, **values)  # type: ignore[arg-type]
        self._records[record.id] = updated
        details = {k: _iso(v) for k, v in values.items()}
        self._log(actor, action, record.id, details, owner=record.owner)
        return updated

    def _log(
        self,
        actor: _Record | None,
        action: str,
        token_id: str | None,
        details: dict[str, Any],
        *,
        owner: str | None = None,
    ) -> None:
        self._audit_owner[len(self._audit) + 1] = owner
        self._audit.append(
            {
                "id": len(self._audit) + 1,
                "at": _iso(self._now()),
                "actor_id": "system" if actor is None else actor.id,
                "actor_name": "amplify-auth-server" if actor is None else actor.name,
                "action": action,
                "token_id": token_id,
                "details": details,
            }
        )

    def _known(self, token_id: str, actor: _Record) -> _Record:
        record = self._records.get(token_id) if is_token_id(token_id) else None
        record = self._visible(actor, record)
        if record is None:
            raise _Refusal(404, "not_found", f"no token with id {token_id!r}")
        return record

    def _record_body(self, record: _Record, now: datetime) -> dict[str, Any]:
        return {
            "token_id": record.id,
            "name": record.name,
            "scopes": list(record.scopes),
            "status": record.status(now),
            "created_at": _iso(record.created_at),
            "expires_at": _iso(record.expires_at),
            "revoked_at": _iso(record.revoked_at),
            "description": record.description,
            "metadata": record.metadata,
            "owner": record.owner,
            "last_used_at": _iso(record.last_used_at),
            "replaced_by": record.replaced_by,
            "rotated_from": record.rotated_from,
            "finish_when_idle_seconds": record.finish_when_idle_seconds,
        }

    @staticmethod
    def _json(request: httpx.Request, loc: list[str | int] | None = None) -> dict[str, Any]:
        loc = ["body"] if loc is None else loc
        try:
            body = json.loads(request.content.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError included
            raise _invalid(loc, "Invalid JSON", "json_invalid") from None
        if not isinstance(body, dict):
            raise _invalid(loc, "Input should be a valid dictionary", "model_type")
        return body

    @staticmethod
    def _strict_body(request: httpx.Request) -> None:
        """What the server asks of every body sent to ``/auth/``: JSON's media type,
        UTF-8, and each key once (``amplify_auth_server.bodies``)."""
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media != "application/json":
            raise _Refusal(
                415,
                "unsupported_media_type",
                "send the body as JSON, with Content-Type: application/json",
            )
        if request.url.path == "/auth/validate":
            return  # its route checks the rest itself, after the fields
        _no_duplicate_keys(request.content)

    @staticmethod
    def _flag(request: httpx.Request, name: str) -> bool:
        raw = request.url.params.get(name)
        if raw is None:
            return False
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise _invalid(["query", name], "Input should be a valid boolean", "bool_parsing")


_AUDIT_PARAMETERS: Final = ("limit", "cursor", "action", "actor", "since", "until")
#: Every route of the real server's HTTP API, as (method, path, handler);
#: ``{}`` matches one path segment, passed to the handler.
_ROUTES: Final[tuple[tuple[str, str, Callable[..., _Answer], tuple[str, ...]], ...]] = (
    ("POST", "auth/validate", FakeAuthServer._validate_route, ()),
    ("POST", "auth/tokens", FakeAuthServer._create_route, ()),
    (
        "GET",
        "auth/tokens",
        FakeAuthServer._list_route,
        (
            "limit",
            "cursor",
            "status",
            "all",
            "name",
            "scope",
            "expires_within_days",
            "owner",
            "unused_for_days",
            "used_within_days",
        ),
    ),
    ("POST", "auth/tokens/revoke", FakeAuthServer._bulk_revoke_route, ()),
    ("GET", "auth/tokens/{}", FakeAuthServer._get_route, ()),
    ("POST", "auth/tokens/{}/revoke", FakeAuthServer._revoke_route, ()),
    ("POST", "auth/tokens/{}/extend", FakeAuthServer._extend_route, ()),
    ("POST", "auth/tokens/{}/rotate", FakeAuthServer._rotate_route, ()),
    ("GET", "auth/tokens/{}/audit", FakeAuthServer._token_audit_route, _AUDIT_PARAMETERS),
    ("GET", "auth/audit", FakeAuthServer._audit_route, _AUDIT_PARAMETERS),
    ("POST", "auth/usage", FakeAuthServer._usage_route, ()),
)
#: Each route's name on the real server: what an audited refusal says was attempted.
_ATTEMPTS: Final[dict[Callable[..., _Answer], str]] = {
    FakeAuthServer._create_route: "create_token",
    FakeAuthServer._list_route: "list_tokens",
    FakeAuthServer._bulk_revoke_route: "revoke_tokens",
    FakeAuthServer._get_route: "get_token",
    FakeAuthServer._revoke_route: "revoke_token",
    FakeAuthServer._extend_route: "extend_token",
    FakeAuthServer._rotate_route: "rotate_token",
    FakeAuthServer._token_audit_route: "token_audit",
    FakeAuthServer._audit_route: "audit",
}
_DIGITS: Final = re.compile(r"0|[1-9][0-9]{0,8}")
_SAFE_NAME: Final = re.compile(r"[A-Za-z0-9_.\[\]-]{1,64}")


def _check_query(request: httpx.Request, declared: tuple[str, ...]) -> None:
    """Each query parameter one the route declares, once (``amplify_auth_server.deps``)."""
    seen: set[str] = set()
    errors: list[dict[str, Any]] = []
    for name, _ in request.url.params.multi_items():
        if name not in declared:
            msg, kind = "Unknown query parameter", "extra_forbidden"
        elif name in seen:
            msg, kind = "Given more than once", "duplicate"
        else:
            seen.add(name)
            continue
        shown = name if _SAFE_NAME.fullmatch(name) else "*"
        errors.append({"loc": ["query", shown], "msg": msg, "type": kind})
    if errors:
        raise _Refusal(
            422,
            "invalid_request",
            "the query has parameters this route does not take",
            errors=errors,
        )


def _match(template: str, parts: list[str]) -> list[str] | None:
    """The path parameters if ``parts`` (a path split on ``/``) fits ``template``."""
    expected = template.split("/")
    if len(expected) != len(parts):
        return None
    params = []
    for want, got in zip(expected, parts, strict=True):
        if want == "{}":
            params.append(got)
        elif want != got:
            return None
    return params


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Refusal(
            422,
            "invalid_request",
            "the JSON body has a key twice; send each key once",
            errors=[{"loc": ["body"], "msg": "duplicate key", "type": "json_invalid"}],
        )
    return result


def _no_duplicate_keys(content: bytes) -> None:
    try:
        json.loads(content.decode("utf-8"), object_pairs_hook=_unique_keys)
    except ValueError:
        raise _Refusal(
            422,
            "invalid_request",
            "the body is not valid JSON in UTF-8",
            errors=[{"loc": ["body"], "msg": "Invalid JSON", "type": "json_invalid"}],
        ) from None


_STATUSES: Final = frozenset({"active", "revoked", "expired", "all"})
_CURSOR: Final = re.compile(r"[A-Za-z0-9_-]+")
_ACTION: Final = re.compile(r"[a-z_]{1,32}")


def _optional_int(params: httpx.QueryParams, name: str, low: int, high: int) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    value = int(raw) if _DIGITS.fullmatch(raw) else None
    if value is None or not low <= value <= high:
        raise _invalid(["query", name], f"Input should be between {low} and {high}", "range")
    return value


def _page_size(params: httpx.QueryParams) -> int:
    limit = _optional_int(params, "limit", 1, MAX_PAGE_SIZE)
    return DEFAULT_PAGE_SIZE if limit is None else limit


def _aware(params: httpx.QueryParams, name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _invalid(["query", name], "Input should have timezone info", "timezone_aware")
    return moment


def _matches(record: _Record, filters: Mapping[str, Any], now: datetime) -> bool:
    """The server's listing filters (``amplify_auth_server.store.token_conditions``)."""
    status = filters["status"]
    if status != "all" and record.status(now) != status:
        return False
    name, scope, within = filters["name"], filters["scope"], filters["expires_within_days"]
    if filters["owner"] is not None and record.owner != filters["owner"]:
        return False
    if name is not None and not record.name.lower().startswith(name.lower()):
        return False
    if scope is not None and scope not in record.scopes:
        return False
    if within is not None and not (
        record.expires_at is not None and record.expires_at <= now + timedelta(days=within)
    ):
        return False
    unused, used = filters.get("unused_for_days"), filters.get("used_within_days")
    last = record.last_used_at
    if unused is not None and not (last is None or last < now - timedelta(days=unused)):
        return False
    return used is None or (last is not None and last >= now - timedelta(days=used))


_USAGE_FILTERS: Final = ("unused_for_days", "used_within_days")
_HASH: Final = re.compile(r"[0-9a-f]{64}")


def _usage_report(body: dict[str, Any]) -> list[tuple[str, int]]:
    """A usage report's hits, as the server's UsageReport reads them."""
    if set(body) - {"hits"}:
        (extra, *_) = sorted(set(body) - {"hits"})
        raise _invalid(["body", extra], "Extra inputs are not permitted", "extra_forbidden")
    if "hits" not in body:
        raise _invalid(["body", "hits"], "Field required", "missing")
    hits = body["hits"]
    if not isinstance(hits, list):
        raise _invalid(["body", "hits"], "Input should be a valid list", "list_type")
    if len(hits) > MAX_USAGE_HITS:
        raise _invalid(["body", "hits"], "List should have fewer items", "too_long")
    report: list[tuple[str, int]] = []
    for index, hit in enumerate(hits):
        where: list[str | int] = ["body", "hits", index]
        if not isinstance(hit, dict):
            raise _invalid(where, "Input should be a valid dictionary", "model_type")
        if set(hit) - {"token_hash", "count"}:
            (extra, *_) = sorted(set(hit) - {"token_hash", "count"})
            raise _invalid([*where, extra], "Extra inputs are not permitted", "extra_forbidden")
        for name in ("token_hash", "count"):
            if name not in hit:
                raise _invalid([*where, name], "Field required", "missing")
        token_hash, count = hit["token_hash"], hit["count"]
        if not (isinstance(token_hash, str) and _HASH.fullmatch(token_hash)):
            raise _invalid([*where, "token_hash"], "String should match pattern", "string_type")
        if not _whole(count, 1, MAX_USAGE_COUNT):
            raise _invalid([*where, "count"], "Out of range", "range")
        report.append((token_hash, count))
    return report


def _bulk_request(
    body: dict[str, Any],
) -> tuple[list[str] | None, dict[str, Any], bool]:
    """A bulk revocation's body, as the server's RevokeByIds | RevokeByFilter reads it:
    the ids, or the filters (every one named, None when not given), and ``dry_run``."""
    if set(body) == {"token_ids"}:
        ids = body["token_ids"]
        if (
            not isinstance(ids, list)
            or not 1 <= len(ids) <= MAX_BULK_IDS
            or not all(is_token_id(i) for i in ids)
            or len(set(ids)) != len(ids)
        ):
            raise _invalid(["body", "token_ids"], "Token ids, each once", "list_type")
        return ids, {}, False
    wanted, dry_run = body.get("filter"), body.get("dry_run", False)
    if "filter" not in body or not set(body) <= {"filter", "dry_run"}:
        raise _invalid(["body"], "token_ids, or a filter", "union_tag_invalid")
    fields = {"name", "scope", "expires_within_days", "owner", *_USAGE_FILTERS}
    if not isinstance(wanted, dict) or not set(wanted) <= fields:
        raise _invalid(["body", "filter"], "A filter", "model_type")
    name, scope = wanted.get("name"), wanted.get("scope")
    within, owner = wanted.get("expires_within_days"), wanted.get("owner")
    where: list[str | int] = ["body", "filter"]
    if name is not None and not (name and is_text(name, MAX_NAME_LENGTH)):
        raise _invalid([*where, "name"], "String should match pattern", "string_type")
    if scope is not None and not is_scope(scope):
        raise _invalid([*where, "scope"], "String should match pattern", "string_type")
    if within is not None and not _whole(within, 0, MAX_TTL_DAYS):
        raise _invalid([*where, "expires_within_days"], "Out of range", "range")
    if owner is not None and not is_owner(owner):
        raise _invalid([*where, "owner"], "String should match pattern", "string_type")
    for usage_filter in _USAGE_FILTERS:
        days = wanted.get(usage_filter)
        if days is not None and not _whole(days, 1, MAX_TTL_DAYS):
            raise _invalid([*where, usage_filter], "Out of range", "range")
    if not isinstance(dry_run, bool):
        raise _invalid(["body", "dry_run"], "Input should be a valid boolean", "bool_type")
    filters = {name: wanted.get(name) for name in sorted(fields)}
    if all(value is None for value in filters.values()):
        raise _invalid(where, "At least one filter", "value_error")
    return None, filters, dry_run


def _whole(value: object, low: int, high: int) -> TypeGuard[int]:
    """A JSON integer in range, strictly: ``true``, ``"5"`` and ``5.0`` are not."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _created(token: str, record: _Record) -> CreatedToken:
    return CreatedToken(
        token=token,
        token_id=record.id,
        name=record.name,
        scopes=record.scopes,
        created_at=record.created_at,
        expires_at=record.expires_at,
        description=record.description,
        metadata=record.metadata,
        owner=record.owner,
    )
