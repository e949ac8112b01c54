"""The single writer: every change to tokens is a command run by one task.

Handlers build a frozen command and ``await queue.submit(command)``; one
writer task takes commands in order, runs each in its own transaction,
writes the audit record in that same transaction, makes the new state
visible in every cache tier (:mod:`amplify_auth_server.propagation`), and
only then answers the handler's future, with the result and what the
handler must still await (the other replicas' confirmations: awaited by the
handler, not by the writer, so that a slow replica cannot slow every
write). Validation never comes here: it only reads.

Within one process the queue is what orders writes. Across replicas the
database is: each command reads the row under a lock (``FOR UPDATE`` on
PostgreSQL) and writes only if the row's version is still the one it read,
so a revoke and an extend racing on two replicas end in one of the two
serial orders, never a mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Generic, TypeVar

from sqlalchemy.exc import IntegrityError

from amplify_auth_client.contract import MAX_TTL_DAYS, generate_token, hash_token, iso
from amplify_auth_server.cache import TokenState
from amplify_auth_server.errors import (
    AuthServerError,
    Conflict,
    DatabaseUnavailable,
    NotFound,
    ServiceUnavailable,
    ShuttingDown,
)
from amplify_auth_server.events import Change
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.models import Actor, TokenRecord, utcnow
from amplify_auth_server.propagation import Applied, Propagation
from amplify_auth_server.store import ConcurrentUpdate, TokenStore
from amplify_auth_server.telemetry import command_span

logger = logging.getLogger("amplify_auth_server.commands")

T = TypeVar("T")

DEFAULT_QUEUE_SIZE: Final = 10_000
_ATTEMPTS: Final = 5


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    """A command's result, and what its caller must still await before answering."""

    value: T
    pending: tuple[Awaitable[None], ...] = ()


@dataclass(frozen=True, slots=True)
class Writer:
    """What a command may touch: the store, and the after-commit path (None in a
    one-shot process, which has no caches)."""

    store: TokenStore
    propagation: Propagation | None

    async def apply(self, record: TokenRecord, change: Change) -> Applied:
        """Show ``record``'s committed state to every cache and announce it."""
        if self.propagation is None:
            return Applied(True)
        return await self.propagation.apply(
            record.token_hash, TokenState.from_record(record), change
        )

    @property
    def durable(self) -> bool:
        """Whether changes go through the outbox (only with a shared tier)."""
        return self.propagation is not None and self.propagation.durable


def _done(value: T, applied: Applied) -> Done[T]:
    pending = () if applied.confirmation is None else (applied.confirmation,)
    return Done(value, pending)


class Command(ABC, Generic[T]):
    """A change, executed only by the writer (or by a one-shot CLI process)."""

    actor: Actor

    @property
    def kind(self) -> str:
        return type(self).__name__

    @abstractmethod
    async def execute(self, writer: Writer) -> Done[T]: ...


@dataclass(frozen=True, slots=True)
class Minted:
    """The one object that ever holds a raw token, on its way to the response."""

    record: TokenRecord
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class CreateToken(Command[Minted]):
    actor: Actor
    name: str
    scopes: tuple[str, ...]
    ttl_days: int | None = None
    description: str | None = None
    metadata: dict[str, str] | None = None

    async def execute(self, writer: Writer) -> Done[Minted]:
        for attempt in range(_ATTEMPTS):
            raw = generate_token()
            now = utcnow()
            expires_at = None if self.ttl_days is None else now + timedelta(days=self.ttl_days)
            record = TokenRecord.new(
                token_hash=hash_token(raw),
                name=self.name,
                scopes=self.scopes,
                created_by=self.actor.id,
                now=now,
                expires_at=expires_at,
                description=self.description,
                metadata=self.metadata,
            )
            try:
                await _insert(writer, record, self.actor, "create")
            except IntegrityError:
                # An id or hash collision: vanishingly rare, and a fresh draw fixes it.
                if attempt == _ATTEMPTS - 1:
                    raise
                continue
            # A new hash: nothing can have cached it, so no cache to tell.
            return Done(Minted(record=record, token=raw))
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class RegisterToken(Command[TokenRecord]):
    """Register a token minted elsewhere (``AUTH_ADMIN_TOKEN``), by hash, once."""

    actor: Actor
    token_hash: str = field(repr=False)
    name: str
    scopes: tuple[str, ...]

    async def execute(self, writer: Writer) -> Done[TokenRecord]:
        record = await self._register(writer)
        # Someone may have tried this token before it was registered: its
        # "unknown" answer must not outlive the registration.
        return _done(record, await writer.apply(record, "registered"))

    async def _register(self, writer: Writer) -> TokenRecord:
        for _ in range(_ATTEMPTS):
            record = TokenRecord.new(
                token_hash=self.token_hash,
                name=self.name,
                scopes=self.scopes,
                created_by=self.actor.id,
                now=utcnow(),
                description="registered at start-up",
            )
            try:
                return await _insert(writer, record, self.actor, "register", unless_known=True)
            except IntegrityError:
                continue  # another replica registered it first: read theirs
        raise ServiceUnavailable("could not register the token; retry")


async def _insert(
    writer: Writer, record: TokenRecord, actor: Actor, action: str, *, unless_known: bool = False
) -> TokenRecord:
    """Insert ``record`` and its audit entry in one transaction.

    ``unless_known``: if a token with the same hash exists, return it instead.
    """
    async with writer.store.transaction() as connection:
        if unless_known:
            existing = await writer.store.find_hash(connection, record.token_hash)
            if existing is not None:
                return existing
        await writer.store.insert(connection, record)
        await writer.store.record(
            connection,
            at=record.created_at,
            actor=actor,
            action=action,
            token_id=record.id,
            details=_describe(record),
        )
    return record


class _Change(Command[TokenRecord]):
    """A change to an existing row: read under lock, decide, write if unchanged."""

    token_id: str

    @abstractmethod
    def change(self, current: TokenRecord, now: datetime) -> dict[str, Any] | None:
        """The column values to write, or None when there is nothing to do."""

    async def execute(self, writer: Writer) -> Done[TokenRecord]:
        for _ in range(_ATTEMPTS):
            now = utcnow()
            current: TokenRecord | None = None
            try:
                async with writer.store.transaction() as connection:
                    current = await writer.store.lock(connection, self.token_id)
                    if current is None:
                        raise NotFound.token(self.token_id)
                    values = self.change(current, now)
                    if values is None:
                        updated = current
                    else:
                        updated = await writer.store.update(connection, current, **values)
                        await writer.store.record(
                            connection,
                            at=now,
                            actor=self.actor,
                            action=self.action,
                            token_id=current.id,
                            details=_jsonable(values),
                        )
                        if writer.durable:
                            await writer.store.outbox_add(
                                connection, updated.token_hash, updated.version, now
                            )
            except ConcurrentUpdate:
                continue
            except DatabaseUnavailable:
                if current is not None and writer.propagation is not None:
                    # The commit may or may not have happened: whatever the
                    # caches hold for this token may now be wrong.
                    await writer.propagation.forget(
                        current.token_hash, self.change_kind, current.version + 1
                    )
                raise
            # Also when nothing changed: a previous attempt may have
            # committed and then failed to reach a cache.
            applied = await writer.apply(updated, self.change_kind)
            if applied.stored and writer.durable and values is not None:
                with contextlib.suppress(DatabaseUnavailable):
                    # Left behind, the row only costs a harmless replay.
                    await writer.store.outbox_done(updated.token_hash, updated.version)
            return _done(updated, applied)
        raise ServiceUnavailable("the token kept changing concurrently; retry")

    @property
    @abstractmethod
    def action(self) -> str: ...

    @property
    @abstractmethod
    def change_kind(self) -> Change:
        """What subscribers of the event stream are told happened."""


@dataclass(frozen=True, slots=True)
class RevokeToken(_Change):
    """Revoke now; revoking a revoked token changes nothing and succeeds."""

    actor: Actor
    token_id: str

    @property
    def action(self) -> str:
        return "revoke"

    @property
    def change_kind(self) -> Change:
        return "revoked"

    def change(self, current: TokenRecord, now: datetime) -> dict[str, Any] | None:
        if current.revoked_at is not None:
            return None
        return {"revoked_at": now}


@dataclass(frozen=True, slots=True)
class ExtendToken(_Change):
    """Push the expiry ``days`` further: from the current expiry, or from now if past."""

    actor: Actor
    token_id: str
    days: int

    @property
    def action(self) -> str:
        return "extend"

    @property
    def change_kind(self) -> Change:
        return "extended"

    def change(self, current: TokenRecord, now: datetime) -> dict[str, Any] | None:
        status = current.status(now)
        if status == "revoked":
            raise Conflict(f"token {current.id} is revoked; a revoked token cannot be extended")
        if current.expires_at is None:
            raise Conflict(f"token {current.id} never expires; there is nothing to extend")
        expires_at = max(current.expires_at, now) + timedelta(days=self.days)
        if expires_at > now + timedelta(days=MAX_TTL_DAYS):
            raise Conflict(
                f"token {current.id} would then expire more than {MAX_TTL_DAYS} days from now"
            )
        return {"expires_at": expires_at}


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    # Times as the rest of the API writes them: UTC with a Z.
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in values.items()}


def _describe(record: TokenRecord) -> dict[str, Any]:
    return _jsonable(
        {"name": record.name, "scopes": list(record.scopes), "expires_at": record.expires_at}
    )


_STOP: Final = object()


class CommandQueue:
    """One queue, one writer task, one future per command."""

    def __init__(
        self, writer: Writer, metrics: Metrics, *, maxsize: int = DEFAULT_QUEUE_SIZE
    ) -> None:
        self._writer = writer
        self._metrics = metrics
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future[Any] | None]] = asyncio.Queue(
            maxsize=maxsize
        )
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        metrics.watch_queue(self._queue.qsize)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closed

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="amplify-auth-writer")

    async def submit(self, command: Command[T]) -> T:
        """Queue ``command``, wait for the writer's answer (or its error), then
        for the other replicas to confirm the change."""
        if self._closed or self._task is None:
            raise ShuttingDown()
        if self._task.done():
            raise ServiceUnavailable("the writer has stopped; restart this server")
        future: asyncio.Future[Done[T]] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((command, future))
        except asyncio.QueueFull:
            raise ServiceUnavailable("too many pending changes; retry shortly") from None
        # Shielded: a client that hangs up must not cancel a change that the
        # writer may already have committed.
        with command_span(command.kind):
            done = await asyncio.shield(future)
            for pending in done.pending:
                await pending
        return done.value

    async def stop(self) -> None:
        """Refuse new commands, finish every queued one, then end the writer."""
        if self._task is None:
            return
        self._closed = True
        await self._queue.put((_STOP, None))
        await self._task

    async def _run(self) -> None:
        while True:
            command, future = await self._queue.get()
            if command is _STOP:
                return
            assert future is not None
            try:
                done = await command.execute(self._writer)
            except AuthServerError as exc:
                self._metrics.commands.labels(command.kind, type(exc).__name__).inc()
                _settle(future, exc=exc)
            except Exception as exc:
                # The writer must outlive any one command: log, answer, go on.
                logger.exception("command %s failed", command.kind)
                self._metrics.commands.labels(command.kind, "error").inc()
                _settle(future, exc=exc)
            else:
                self._metrics.commands.labels(command.kind, "ok").inc()
                _settle(future, result=done)


def _settle(
    future: asyncio.Future[Any], *, result: Any = None, exc: BaseException | None = None
) -> None:
    if future.done():  # cancelled: the loop is shutting down
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
