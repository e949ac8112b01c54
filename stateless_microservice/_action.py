"""``StatelessAction``: one endpoint of a service, checked when it is built.

Checked at construction, as Starlette checks its routes, so that a typo in a
scope, a path without its leading slash or a handler with the wrong
parameters stops the service at start-up with a message, instead of turning
into a 404, a 500 or, worst, an endpoint that lets everyone in.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

from amplify_auth_client import OnOutage, Policy
from stateless_microservice._identity import ActionRequest, Caller

HttpMethod: TypeAlias = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
METHODS: Final[frozenset[str]] = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

#: A public action's handler: ``handler(request)``.
PublicHandler: TypeAlias = Callable[[ActionRequest], Any | Awaitable[Any]]
#: A protected action's handler: ``handler(request, caller)``.
ProtectedHandler: TypeAlias = Callable[[ActionRequest, Caller], Any | Awaitable[Any]]

_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}")
_PATH: Final = re.compile(r"/[A-Za-z0-9_.~!$&'()*+,;=:@%{}/-]*")
_PATH_PARAM: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class StatelessAction:
    """An endpoint: ``method path`` answered by ``handler``, open only to tokens holding
    every one of ``required_scopes``.

    ``required_scopes=()`` (the default) makes a public action: no token is
    asked for or looked at, and the handler is called as ``handler(request)``;
    it keeps answering while the auth service is down, which is what a
    ``/health`` endpoint needs. A protected action's handler is called as
    ``handler(request, caller)``, only after the token was validated::

        StatelessAction(
            name="my_endpoint",
            path="/my-endpoint",
            handler=self.my_handler,          # def my_handler(self, request, caller): ...
            required_scopes=["read", "write"],  # requires both scopes
        )

    ``max_staleness``, ``on_outage`` and ``outage_grace`` say how far the
    action trusts a cached answer, and what it does while the auth service is
    down (see :class:`~amplify_auth_client.Policy`): ``max_staleness=0`` for
    an action that must never act on a cached answer, ``on_outage=
    "serve_cached"`` for a read that may ride an outage; the default is the
    client's cache and a 503 during an outage.

    ``method`` defaults to POST (actions do things; a GET must be asked for);
    ``handler`` may be a plain function, run in a worker thread so it cannot
    block the event loop, or a coroutine function, awaited in the loop.
    ``description`` defaults to the handler's docstring, for the OpenAPI
    documentation. Paths may hold ``{parameters}``, given to the handler in
    ``request.path_params``.
    """

    name: str
    path: str
    handler: PublicHandler | ProtectedHandler
    required_scopes: Collection[str] = ()
    method: HttpMethod = "POST"
    description: str | None = field(default=None, repr=False)
    max_staleness: float | None = None
    on_outage: OnOutage = "deny"
    outage_grace: float | None = None
    #: What the authentication core is asked for this action (built from the above).
    policy: Policy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(
                f"action name {self.name!r}: use letters, digits, '_', '.' or '-', "
                "starting with a letter or '_' (it is the OpenAPI operationId)"
            )
        if not isinstance(self.path, str) or not _PATH.fullmatch(self.path):
            raise ValueError(
                f"action {self.name!r}: path {self.path!r} must start with '/' and hold only "
                "URL path characters (no query string, no spaces)"
            )
        method = self.method.upper() if isinstance(self.method, str) else self.method
        if method not in METHODS:
            raise ValueError(
                f"action {self.name!r}: method {self.method!r} is not one of "
                f"{', '.join(sorted(METHODS))}"
            )
        # Frozen: normalised values are set the way dataclasses set them.
        object.__setattr__(self, "method", method)
        try:
            policy = Policy(
                scopes=self.required_scopes,
                max_staleness=self.max_staleness,
                on_outage=self.on_outage,
                outage_grace=self.outage_grace,
            )
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"action {self.name!r}: {exc}") from None
        if policy.scopes == () and (policy.max_staleness is not None or policy.on_outage != "deny"):
            raise ValueError(
                f"action {self.name!r} is public (no required_scopes): it reads no token, so "
                "max_staleness and on_outage do not apply; drop them, or require a scope"
            )
        object.__setattr__(self, "policy", policy)
        object.__setattr__(self, "required_scopes", policy.scopes)
        object.__setattr__(self, "max_staleness", policy.max_staleness)
        object.__setattr__(self, "outage_grace", policy.outage_grace)
        _check_handler(self.name, self.handler, protected=bool(self.required_scopes))

    @property
    def public(self) -> bool:
        """Whether the action needs no token."""
        return not self.required_scopes

    @property
    def path_params(self) -> tuple[str, ...]:
        """The ``{parameters}`` of the path, in order."""
        return tuple(_PATH_PARAM.findall(self.path))

    @property
    def is_async(self) -> bool:
        """Whether the handler is awaited in the event loop (else run in a thread)."""
        handler = self.handler
        return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - an instance with async __call__
        )


def _check_handler(name: str, handler: object, *, protected: bool) -> None:
    if not callable(handler):
        raise TypeError(f"action {name!r}: handler must be callable, got {type(handler).__name__}")
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # some builtins have none: let the call decide
        return
    arguments = (None, None) if protected else (None,)
    try:
        signature.bind(*arguments)
    except TypeError:
        shape = "handler(request, caller)" if protected else "handler(request)"
        why = "it requires scopes" if protected else "it is public (no required_scopes)"
        raise TypeError(
            f"action {name!r}: its handler is called as {shape}, since {why}; "
            f"{getattr(handler, '__qualname__', handler)!s}{signature} does not accept that"
        ) from None
