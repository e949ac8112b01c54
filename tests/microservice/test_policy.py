"""Per-action max_staleness and on_outage: a strict action always asks, a read rides an outage."""

from __future__ import annotations

from typing import Any

import pytest

from amplify_auth_client.testing import FakeAuthServer
from stateless_microservice import ActionRequest, Caller, StatelessAction, StatelessService
from stateless_microservice.testing import service_client


class Shop(StatelessService):
    name = "shop"

    def actions(self) -> list[StatelessAction]:
        return [
            StatelessAction(
                name="browse",
                path="/browse",
                method="GET",
                handler=self.show,
                required_scopes=["shop:read"],
                on_outage="serve_cached",
                outage_grace=60,
            ),
            StatelessAction(
                name="refund",
                path="/refund",
                handler=self.show,
                required_scopes=["shop:read"],
                max_staleness=0,
            ),
            StatelessAction(
                name="cart", path="/cart", handler=self.show, required_scopes=["shop:read"]
            ),
        ]

    def show(self, request: ActionRequest, caller: Caller) -> dict[str, Any]:
        return {"name": caller.name, "stale": caller.stale}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_strict_action_asks_the_auth_service_every_time() -> None:
    auth = FakeAuthServer()
    token = auth.add_token("shopper", ["shop:read"]).token
    with service_client(Shop(), auth, cache_ttl=30) as client:
        for _ in range(3):
            assert client.post("/cart", headers=bearer(token)).status_code == 200
        assert auth.validation_requests() == 1
        for _ in range(3):
            assert client.post("/refund", headers=bearer(token)).status_code == 200
        assert auth.validation_requests() == 4


def test_a_read_serves_a_recent_answer_flagged_stale_while_the_auth_service_is_down() -> None:
    auth = FakeAuthServer()
    token = auth.add_token("shopper", ["shop:read"]).token
    with service_client(Shop(), auth) as client:
        assert client.get("/browse", headers=bearer(token)).json() == {
            "name": "shopper",
            "stale": False,
        }
        auth.available = False
        served = client.get("/browse", headers=bearer(token))
        assert (served.status_code, served.json()["stale"]) == (200, True)
        # The other actions deny, as by default.
        denied = client.post("/cart", headers=bearer(token))
        assert (denied.status_code, denied.json()["error"]) == (503, "auth_unavailable")
        # A token never seen before has nothing to serve.
        other = auth.add_token("other", ["shop:read"]).token
        assert client.get("/browse", headers=bearer(other)).status_code == 503


def test_a_revocation_seen_is_never_served_during_an_outage() -> None:
    auth = FakeAuthServer()
    created = auth.add_token("shopper", ["shop:read"])
    with service_client(Shop(), auth) as client:
        assert client.get("/browse", headers=bearer(created.token)).status_code == 200
        auth.revoke(created.token_id)
        assert client.get("/browse", headers=bearer(created.token)).status_code == 401
        auth.available = False
        assert client.get("/browse", headers=bearer(created.token)).status_code == 401


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_staleness": -1}, "max_staleness must be zero or more"),
        ({"on_outage": "allow"}, "on_outage must be 'deny'"),
        ({"outage_grace": 10}, "outage_grace applies only with on_outage='serve_cached'"),
    ],
)
def test_a_wrong_policy_is_refused_when_the_action_is_built(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        StatelessAction(
            name="a", path="/a", handler=lambda r, c: None, required_scopes=["read"], **options
        )


def test_a_public_action_takes_no_policy() -> None:
    with pytest.raises(ValueError, match="is public"):
        StatelessAction(name="a", path="/a", handler=lambda r: None, max_staleness=0)
