"""Console sessions, on a controllable clock."""

from __future__ import annotations

from amplify_auth_server.console._sessions import (
    IDLE_TIMEOUT,
    MAX_OPEN_FORMS,
    Session,
    SessionStore,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def session() -> Session:
    return Session(token_id="tok_aaaaaaaaaaaaaaaa", token_hash="ab" * 32, name="admin")


def test_a_session_ends_after_thirty_idle_minutes_and_not_before() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    session_id = store.open(session())
    clock.now += IDLE_TIMEOUT - 1
    assert store.get(session_id) is not None  # used: its idle time starts again
    clock.now += IDLE_TIMEOUT - 1
    assert store.get(session_id) is not None
    clock.now += IDLE_TIMEOUT + 1
    assert store.get(session_id) is None
    assert len(store) == 0
    assert IDLE_TIMEOUT == 30 * 60


def test_sign_out_ends_a_session_and_ids_are_not_guessable() -> None:
    store = SessionStore()
    first, second = store.open(session()), store.open(session())
    assert first != second
    assert len(first) >= 40
    store.close(first)
    assert store.get(first) is None
    assert store.get(second) is not None
    assert store.get("made-up") is None


def test_the_store_is_bounded_and_drops_the_least_recently_used() -> None:
    store = SessionStore(max_sessions=2)
    old, kept = store.open(session()), store.open(session())
    store.get(old)  # used: now the most recent
    newest = store.open(session())
    assert store.get(kept) is None
    assert store.get(old) is not None
    assert store.get(newest) is not None


def test_a_session_holds_no_secret_in_its_repr_and_no_cookie_in_memory() -> None:
    store = SessionStore()
    record = session()
    session_id = store.open(record)
    assert record.token_hash not in repr(record)
    assert record.csrf not in repr(record)
    assert session_id not in repr(store._sessions)


def test_a_create_form_is_taken_once() -> None:
    record = session()
    first = record.hand_out_form()
    assert record.take_form(first)
    assert not record.take_form(first)
    assert not record.take_form("")
    forms = [record.hand_out_form() for _ in range(MAX_OPEN_FORMS + 1)]
    assert not record.take_form(forms[0])  # the oldest open form was closed
    assert record.take_form(forms[-1])
