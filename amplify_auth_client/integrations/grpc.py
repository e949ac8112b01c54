"""gRPC: ``AuthInterceptor``, a ``grpc.aio`` server interceptor with scopes per method.

::

    from amplify_auth_client import Policy
    from amplify_auth_client.integrations.grpc import AuthInterceptor, current_caller

    server = grpc.aio.server(interceptors=[AuthInterceptor(
        methods={
            "/orders.Orders/Get": ["orders:read"],
            "/orders.Orders/Cancel": Policy(scopes=["orders:write"], max_staleness=0),
        },
        public=["/grpc.health.v1.Health/*"],
    )])

    class Orders(orders_pb2_grpc.OrdersServicer):
        async def Get(self, request, context):
            caller = current_caller()           # the Caller of this RPC

The token comes from the ``authorization`` metadata (``Bearer amp_live_...``).
Refusals are the core's, as gRPC statuses: 401 ``UNAUTHENTICATED``, 403
``PERMISSION_DENIED``, 503 ``UNAVAILABLE`` (retry), 400 (two
``authorization`` entries) ``INVALID_ARGUMENT``; the details are the core's
detail, and the ``www-authenticate`` challenge goes in the trailing metadata.

A method listed neither in ``methods`` nor in ``public`` is refused
(``PERMISSION_DENIED``) unless ``default`` gives a policy for the rest: a
method added later is closed until someone decides, not open. ``public``
entries are full method names, or prefixes ending with ``*``.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final

try:
    import grpc
    import grpc.aio
except ImportError as exc:
    from amplify_auth_client.integrations._requires import missing

    raise missing("grpc", exc) from None

from amplify_auth_client import Authenticator, Caller, Policy, Refusal

__all__ = ["STATUS_CODES", "AuthInterceptor", "current_caller"]

logger = logging.getLogger("amplify_auth_client")

#: The gRPC status for each HTTP status the core refuses with.
STATUS_CODES: Final[Mapping[int, grpc.StatusCode]] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    503: grpc.StatusCode.UNAVAILABLE,
}
_CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("amplify_auth_caller")
_KINDS: Final = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
_NO_POLICY: Final = Refusal(403, "no_policy", "this method is not open to any token")


def current_caller() -> Caller:
    """The caller of the RPC being handled, as :class:`AuthInterceptor` authenticated it."""
    try:
        return _CALLER.get()
    except LookupError:
        raise RuntimeError(
            "current_caller() is for methods behind AuthInterceptor (and not public)"
        ) from None


def _policy(requirement: Policy | Sequence[str]) -> Policy:
    return requirement if isinstance(requirement, Policy) else Policy(scopes=requirement)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticate each RPC against its method's policy.

    ``methods`` maps full method names (``/package.Service/Method``) to their
    scopes or :class:`~amplify_auth_client.Policy`; ``public`` lists methods
    open to all; ``default`` is the policy of any other method (None: refused);
    ``auth`` the :class:`~amplify_auth_client.Authenticator` (default: the
    process's).
    """

    def __init__(
        self,
        *,
        methods: Mapping[str, Policy | Sequence[str]],
        public: Iterable[str] = (),
        default: Policy | Sequence[str] | None = None,
        auth: Authenticator | None = None,
    ) -> None:
        self.methods = {name: _policy(required) for name, required in methods.items()}
        for name in self.methods:
            if not name.startswith("/") or name.count("/") != 2:
                raise ValueError(f"method {name!r}: write it as /package.Service/Method")
        entries = list(public)
        self.public = frozenset(e for e in entries if not e.endswith("*"))
        self.public_prefixes = tuple(e[:-1] for e in entries if e.endswith("*"))
        self.default = None if default is None else _policy(default)
        self.auth = auth

    def policy_for(self, method: str) -> Policy | None:
        """The policy of ``method``; None when it is public. KeyError when it has none."""
        policy = self.methods.get(method)
        if policy is not None:
            return policy
        if method in self.public or method.startswith(self.public_prefixes):
            return None
        if self.default is not None:
            return self.default
        raise KeyError(method)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        refusal: Refusal | None = None
        try:
            policy = self.policy_for(method)
        except KeyError:
            logger.warning(
                "gRPC method %s has no policy: list it in AuthInterceptor's methods= or public=",
                method,
            )
            policy, refusal = None, _NO_POLICY
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        if refusal is not None:
            return _replace(handler, _abort(refusal))
        if policy is None:
            return handler
        values = [
            value
            for key, value in handler_call_details.invocation_metadata or ()
            if key == "authorization" and isinstance(value, str)
        ]
        found = await (self.auth or Authenticator.default()).authenticate_async(values, policy)
        if isinstance(found, Refusal):
            return _replace(handler, _abort(found))
        return _replace(handler, None, found)


def _abort(refusal: Refusal) -> Callable[..., Awaitable[Any]]:
    async def abort(request: Any, context: grpc.aio.ServicerContext) -> Any:
        trailing = tuple((name.lower(), value) for name, value in refusal.headers.items())
        await context.abort(
            STATUS_CODES[refusal.status], refusal.detail, trailing_metadata=trailing
        )

    return abort


def _replace(
    handler: grpc.RpcMethodHandler,
    refuse: Callable[..., Awaitable[Any]] | None,
    caller: Caller | None = None,
) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour refused, or run with ``caller`` as the current caller."""
    kind = next(k for k in _KINDS if getattr(handler, k) is not None)
    behaviour = getattr(handler, kind)
    streaming_response = kind.endswith("_stream")

    if refuse is not None:
        if streaming_response:

            async def refused_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await refuse(request, context)
                yield  # pragma: no cover - abort raised

            wrapped: Callable[..., Any] = refused_stream
        else:
            wrapped = refuse
    elif streaming_response:

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
            _CALLER.set(caller)  # type: ignore[arg-type]
            produced = behaviour(request, context)
            if inspect.isasyncgen(produced):
                async for item in produced:
                    yield item
            else:
                for item in produced:
                    yield item

        wrapped = streaming
    else:

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            _CALLER.set(caller)  # type: ignore[arg-type]
            result = behaviour(request, context)
            return await result if inspect.isawaitable(result) else result

        wrapped = unary
    factory = getattr(grpc, f"{kind}_rpc_method_handler")
    return factory(
        wrapped,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
