"""The gRPC interceptor: scopes per method, public methods, unlisted methods closed, streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

from amplify_auth_client import Authenticator, Policy
from amplify_auth_client.integrations.grpc import AuthInterceptor, current_caller
from amplify_auth_client.pytest_plugin import TokenFactory
from amplify_auth_client.testing import FakeAuthServer
from tests.integrations.servers import loop_thread
from tests.support.services import free_port


async def get(request: bytes, context: Any) -> bytes:
    return current_caller().name.encode()


async def watch(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for _ in range(2):
        yield current_caller().name.encode()


def health(request: bytes, context: Any) -> bytes:  # a plain function: run as is
    return b"SERVING"


@pytest.fixture
def channel(amplify_auth_server: FakeAuthServer) -> Iterator[grpc.Channel]:
    handlers = (
        grpc.method_handlers_generic_handler(
            "shop.Orders",
            {
                "Get": grpc.unary_unary_rpc_method_handler(get),
                "Watch": grpc.unary_stream_rpc_method_handler(watch),
                "Drop": grpc.unary_unary_rpc_method_handler(get),
                "Cancel": grpc.unary_unary_rpc_method_handler(get),
            },
        ),
        grpc.method_handlers_generic_handler(
            "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(health)}
        ),
    )
    interceptor = AuthInterceptor(
        methods={
            "/shop.Orders/Get": ["orders:read"],
            "/shop.Orders/Watch": ["orders:read"],
            "/shop.Orders/Cancel": Policy(scopes=["orders:write"], max_staleness=0),
        },
        public=["/grpc.health.v1.Health/*"],
    )
    port = free_port()

    async def start() -> grpc.aio.Server:
        server = grpc.aio.server(interceptors=[interceptor])
        server.add_generic_rpc_handlers(handlers)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        return server

    async def stop(server: grpc.aio.Server) -> None:
        await server.stop(grace=None)
        await Authenticator.default().aclose()

    with loop_thread() as loop:
        server = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as open_channel:
            yield open_channel
        asyncio.run_coroutine_threadsafe(stop(server), loop).result(timeout=30)


def metadata(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def test_a_listed_method_gets_its_caller_unary_and_streaming(
    channel: grpc.Channel, amplify_token: TokenFactory
) -> None:
    token = amplify_token(scopes=["orders:read"], name="reader").token
    assert channel.unary_unary("/shop.Orders/Get")(b"", metadata=metadata(token)) == b"reader"
    stream = channel.unary_stream("/shop.Orders/Watch")(b"", metadata=metadata(token))
    assert list(stream) == [b"reader", b"reader"]


def test_a_method_without_a_policy_is_closed(
    channel: grpc.Channel, amplify_token: TokenFactory
) -> None:
    token = amplify_token(scopes=["orders:read"]).token
    with pytest.raises(grpc.RpcError) as refused:
        channel.unary_unary("/shop.Orders/Drop")(b"", metadata=metadata(token))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_public_methods_answer_while_the_auth_service_is_down(
    channel: grpc.Channel, amplify_auth_server: FakeAuthServer
) -> None:
    amplify_auth_server.available = False
    assert channel.unary_unary("/grpc.health.v1.Health/Check")(b"") == b"SERVING"
    with pytest.raises(grpc.RpcError) as refused:
        channel.unary_unary("/shop.Orders/Get")(b"")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_streaming_refusal_is_the_cores(
    channel: grpc.Channel, amplify_token: TokenFactory
) -> None:
    token = amplify_token(scopes=["billing:read"]).token
    with pytest.raises(grpc.RpcError) as refused:
        list(channel.unary_stream("/shop.Orders/Watch")(b"", metadata=metadata(token)))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    trailing = dict(refused.value.trailing_metadata() or ())
    assert 'scope="orders:read"' in trailing["www-authenticate"]


def test_method_names_are_checked_when_built() -> None:
    with pytest.raises(ValueError, match=r"/package\.Service/Method"):
        AuthInterceptor(methods={"Orders.Get": ["read"]})
