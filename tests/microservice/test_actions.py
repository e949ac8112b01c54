"""Actions and a service's list of them are checked when built, with a message saying the fix."""

from __future__ import annotations

from typing import Any

import pytest

from stateless_microservice import (
    ActionRequest,
    Caller,
    StatelessAction,
    StatelessService,
)


def public(request: ActionRequest) -> dict[str, str]:
    return {}


def protected(request: ActionRequest, caller: Caller) -> dict[str, str]:
    return {}


async def protected_async(request: ActionRequest, caller: Caller) -> dict[str, str]:
    return {}


def test_the_seeds_action_builds_and_is_normalised() -> None:
    action = StatelessAction(
        name="my_endpoint",
        path="/my-endpoint",
        handler=protected,
        required_scopes=["read", "write", "read"],
    )
    assert action.required_scopes == ("read", "write")  # a tuple: the action is hashable, frozen
    assert action.method == "POST"
    assert not action.public
    assert not action.is_async
    with pytest.raises(AttributeError):
        action.path = "/elsewhere"  # type: ignore[misc]


def test_public_by_default_and_methods_in_any_case() -> None:
    action = StatelessAction(name="health", path="/health", handler=public, method="get")  # type: ignore[arg-type]
    assert (action.public, action.method, action.required_scopes) == (True, "GET", ())


def test_async_handlers_are_recognised() -> None:
    class Callable:
        async def __call__(self, request: ActionRequest, caller: Caller) -> None: ...

    for handler in (protected_async, Callable()):
        action = StatelessAction(name="a", path="/a", handler=handler, required_scopes=["read"])
        assert action.is_async


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"name": ""}, ValueError, "action name ''"),
        ({"name": "has space"}, ValueError, "operationId"),
        ({"path": "no-slash"}, ValueError, "must start with '/'"),
        ({"path": "/a?b=1"}, ValueError, "no query string"),
        ({"method": "TRACE"}, ValueError, "is not one of DELETE, GET, PATCH, POST, PUT"),
        ({"required_scopes": "read"}, TypeError, "write ['read']"),
        ({"required_scopes": None}, TypeError, "not NoneType"),
        ({"required_scopes": ["read write"]}, ValueError, "'read write' is not a scope"),
        ({"required_scopes": [""]}, ValueError, "'' is not a scope"),
        ({"required_scopes": [1]}, ValueError, "1 is not a scope"),
        ({"handler": "not callable"}, TypeError, "handler must be callable"),
        ({"handler": public}, TypeError, "called as handler(request, caller), since it requires"),
    ],
)
def test_a_wrong_action_is_refused(
    changes: dict[str, Any], error: type[Exception], message: str
) -> None:
    arguments: dict[str, Any] = {
        "name": "a",
        "path": "/a",
        "handler": protected,
        "required_scopes": ["read"],
    }
    with pytest.raises(error) as raised:
        StatelessAction(**{**arguments, **changes})
    assert message in str(raised.value)


def test_a_public_action_with_a_two_argument_handler_is_refused() -> None:
    with pytest.raises(TypeError, match=r"handler\(request\), since it is public"):
        StatelessAction(name="a", path="/a", handler=protected)


def test_a_handler_that_accepts_both_shapes_serves_both() -> None:
    def either(request: ActionRequest, caller: Caller | None = None) -> None: ...

    StatelessAction(name="a", path="/a", handler=either)
    StatelessAction(name="b", path="/b", handler=either, required_scopes=["read"])


def test_path_parameters_are_listed() -> None:
    action = StatelessAction(name="a", path="/orders/{order_id}/lines/{line}", handler=public)
    assert action.path_params == ("order_id", "line")


class Listed(StatelessService):
    def __init__(self, *actions: Any) -> None:
        self.listed = actions

    def actions(self) -> list[Any]:
        return list(self.listed)


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (
            [
                StatelessAction(name="a", path="/a", handler=public),
                StatelessAction(name="a", path="/b", handler=public),
            ],
            "two actions are named 'a'",
        ),
        (
            [
                StatelessAction(name="a", path="/x/{id}", handler=public),
                StatelessAction(name="b", path="/x/{other}", handler=public),
            ],
            "two actions answer POST /x/{other}",
        ),
        ([{"name": "a"}], "must give StatelessAction objects"),
    ],
)
def test_a_wrong_list_of_actions_is_refused(actions: list[Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError)) as raised:
        Listed(*actions).create_app()
    assert message in str(raised.value)


def test_one_path_may_serve_two_methods() -> None:
    Listed(
        StatelessAction(name="read", path="/x", handler=public, method="GET"),
        StatelessAction(name="write", path="/x", handler=public),
    ).create_app()


def test_a_service_name_that_cannot_be_a_realm_is_refused() -> None:
    class Quoted(Listed):
        name = 'say "hi"'

    with pytest.raises(ValueError, match="realm of WWW-Authenticate"):
        Quoted().create_app()


def test_a_service_without_actions_says_so() -> None:
    with pytest.raises(NotImplementedError, match="must define actions"):
        StatelessService().create_app()
