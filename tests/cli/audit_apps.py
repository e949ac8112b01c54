"""Apps for the audit-routes tests: one well kept, one with a route nobody thought about."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from amplify_auth_client import Caller
from amplify_auth_client.integrations.asgi import AuthMiddleware
from amplify_auth_client.integrations.fastapi import RequireScopes, public

kept = FastAPI()


@kept.get("/orders")
async def orders(caller: Caller = Depends(RequireScopes("orders:read"))) -> dict[str, str]:
    return {"caller": caller.name}


@kept.delete("/orders/{order_id}")
async def cancel(
    order_id: str, caller: Caller = Depends(RequireScopes("orders:write", max_staleness=0))
) -> None:
    return None


@kept.get("/health")
@public
async def health() -> dict[str, str]:
    return {"status": "ok"}


forgotten = FastAPI()


@forgotten.get("/orders")
async def orders_too(caller: Caller = Depends(RequireScopes("orders:read"))) -> str:
    return caller.name


@forgotten.post("/admin/purge")
async def purge() -> None:
    return None


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


guarded = AuthMiddleware(
    Starlette(routes=[Route("/hello", hello), Route("/health", hello)]),
    scopes=["read"],
    public=["/health"],
)
