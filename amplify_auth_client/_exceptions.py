"""The SDK's one error tree, split by what the caller can do about it::

    AuthError                          catch-all for this SDK
    ├── AuthConfigError                fix the client's arguments or environment
    ├── AuthServiceUnavailable         retry later (network, timeout, 5xx after retries)
    ├── TokenAlreadyCreated            an earlier create with this idempotency key made it
    └── AuthRequestError               the server refused the call (4xx): do not retry as is
        ├── AdminTokenInvalid     401  fix the admin credentials
        ├── AdminPermissionDenied 403  the token may not do this (see ``lacks_scope``)
        ├── TokenNotFound         404  check the token id (or its owner)
        ├── TokenConflict         409  the token's state forbids the change
        └── InvalidRequest        400/413/415/422  fix the arguments

httpx errors never escape: the clients turn them into :class:`AuthServiceUnavailable`
at the boundary with ``raise … from exc``, so the original stays on ``__cause__``.

No message, repr or attribute here is ever built from a raw token: the server
promises never to echo one, and the clients also scrub any secret they sent out
of a server's ``detail`` before it reaches an exception (see ``_base._scrub``).

Every error pickles (for Celery, ``ProcessPoolExecutor``, multiprocessing):
message and attributes survive; ``__cause__`` and the traceback, as for any
exception, do not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


def _rebuild(cls: type[AuthError], args: tuple[Any, ...], state: dict[str, Any]) -> AuthError:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class AuthError(Exception):
    """Base class of every error this SDK raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own reduce calls cls(*args), which the keyword-only
        # arguments of AuthRequestError refuse: rebuild without __init__.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class AuthConfigError(AuthError, ValueError):
    """The client cannot be built or used as configured (no base URL, bad option value).

    Also a :class:`ValueError`, since that is what a bad argument raises elsewhere.
    """


class AuthServiceUnavailable(AuthError):
    """No usable answer from the auth service, even after the bounded retries.

    Raised for connection errors, timeouts, 5xx answers, bodies that are not
    the auth API's JSON, a client used after it was closed, and by
    ``validate`` for any answer that is not a 2xx (a 404 there usually means
    a wrong ``base_url``). ``status_code`` is the last HTTP status seen, or
    None when no response came back at all. Validation fails closed on this
    error: no token is ever reported valid without an answer from the server
    (apart from the opt-in, flagged ``stale_if_error`` answers).
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        # Set by the clients when no server answered at all (a transport error,
        # or 502/503/504 after the retries): the only failures stale_if_error
        # may cover. A server that answered 500 or nonsense did answer.
        self._unreachable = False


class TokenAlreadyCreated(AuthError):
    """``create_token`` (or ``rotate_token``) was answered with a replay: the create (or
    rotation) that its idempotency key names happened earlier, and no second token
    was minted.

    The raw token was in that earlier answer only (it is stored nowhere), so
    it cannot be returned now. Typically the earlier answer was lost on the
    way (the SDK retried a create after a timeout): nobody holds the token,
    so revoke :attr:`token_id` and create again; a new call sends a new key.
    """

    def __init__(self, message: str, *, token_id: str) -> None:
        super().__init__(message)
        #: The id of the token the earlier create made.
        self.token_id = token_id


class AuthRequestError(AuthError):
    """The auth service refused the call with a 4xx answer; retrying it as is will not help.

    ``status_code`` is the HTTP status, or None when the client refused the call
    itself before sending it (a missing admin token, an impossible token id).
    ``code`` is the server's stable error code (``not_found``, ``conflict``, …)
    and ``detail`` its explanation. For 422 answers, ``errors`` lists the
    offending fields as ``{"loc", "msg", "type"}`` mappings.
    """

    #: What the caller can do about it; ends every message.
    hint: ClassVar[str] = "check the request against the auth API's documentation"

    def __init__(
        self,
        detail: str,
        *,
        status_code: int | None,
        code: str,
        errors: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.detail = detail
        self.errors = tuple(errors)
        where = "refused before sending" if status_code is None else f"HTTP {status_code}"
        fields = "".join(
            f"; {'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
            for error in self.errors
        )
        super().__init__(f"{detail}{fields} ({where}, {code}): {self.hint}")


class AdminTokenInvalid(AuthRequestError):
    """401: no admin token was sent, or the server does not accept it."""

    hint = "pass admin_token= or set AUTH_ADMIN_TOKEN to an active token holding the admin scope"


#: What a 403's ``code`` says a delegated admin asked beyond its delegation,
#: and what it can do about it.
_BEYOND: dict[str, str] = {
    "other_owner": "a delegated token manages only its own owner's tokens: leave owner out, "
    "or use a token of that owner",
    "scope_not_held": "a delegated token grants only scopes it holds itself: ask for fewer, "
    "or ask an administrator",
    "expires_after_manager": "a delegated token makes nothing that outlives it: give a "
    "shorter ttl_days",
}


class AdminPermissionDenied(AuthRequestError):
    """403: the token is valid but may not do this.

    Either it may manage nothing (``lacks_scope``: it holds neither ``admin``
    nor ``tokens:manage`` with an owner), or it is a delegated admin that asked
    beyond its delegation (``beyond_delegation``): another owner
    (``code == "other_owner"``), a scope it does not hold (``scope_not_held``),
    an expiry past its own (``expires_after_manager``). A token of another
    owner is never a 403: to a delegated admin it is :class:`TokenNotFound`.
    """

    hint = "use a token holding admin, or tokens:manage for the owner of the tokens"

    def __init__(
        self,
        detail: str,
        *,
        status_code: int | None,
        code: str,
        errors: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(detail, status_code=status_code, code=code, errors=errors)
        if code in _BEYOND:
            # The message ends with what to do: for this refusal, not the class's.
            message = str(self.args[0]).removesuffix(type(self).hint)
            self.args = (message + _BEYOND[code],)

    @property
    def lacks_scope(self) -> bool:
        """The token holds neither ``admin`` nor ``tokens:manage`` (with an owner)."""
        return self.code not in _BEYOND

    @property
    def beyond_delegation(self) -> bool:
        """A delegated admin asked for another owner, a scope or an expiry it may not give."""
        return self.code in _BEYOND


class TokenNotFound(AuthRequestError):
    """404: no token has this id, or none this token may manage (to a delegated admin,
    another owner's token is not found, exactly as an unknown id: it cannot tell them apart)."""

    hint = (
        "check the id: list_tokens(include_revoked=True) shows every token this token "
        "may manage (a delegated token: its owner's only)"
    )


class TokenConflict(AuthRequestError):
    """409: the token's state forbids this change (e.g. extending a revoked token)."""

    hint = "get_token() shows the token's current state"


class InvalidRequest(AuthRequestError):
    """400, 413 or 422: the arguments do not fit the API's rules; ``errors`` says which."""

    hint = "fix the arguments named above"
