"""A console session on one replica ends as soon as its token is revoked through another
(PostgreSQL + Redis: the invalidation that every revoke sends reaches the session check)."""

from __future__ import annotations

import pytest

from tests.console.conftest import browserless, create, csrf_of
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_a_revoke_through_another_replica_ends_the_session(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    one, two = replicas
    second = create(one, name="replica-admin", scopes=["admin"])
    with browserless(one) as client:
        form = client.get("/console/sign-in")
        signed = client.post(
            "/console/sign-in", data={"csrf": csrf_of(form.text), "token": second["token"]}
        )
        assert signed.status_code == 303
        assert client.get("/console/tokens").status_code == 200  # its state is cached now
        with two.client() as admin:
            admin.post(f"/auth/tokens/{second['token_id']}/revoke").raise_for_status()
        refused = client.get("/console/tokens")
        assert refused.status_code == 303
        assert refused.headers["location"] == "/console/sign-in?ended=1"
        # Gone for good: signing in again with it is refused.
        again = client.post(
            "/console/sign-in",
            data={"csrf": csrf_of(client.get("/console/sign-in").text), "token": second["token"]},
        )
        assert again.status_code == 401
