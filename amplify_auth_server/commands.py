"""The single writer: every change to tokens is a command run by one task.

Handlers build a frozen command and ``await queue.submit(command)``; one
writer task takes every command waiting (up to a bound: group commit) and
runs them in one transaction, each in a savepoint of its own so that one
failing command fails alone, with each change's audit record in that same
transaction; after the one commit, it makes every new state visible in
every cache tier (:mod:`amplify_auth_server.propagation`) in one round, and
only then answers the handlers' futures, with each result and what each
handler must still await (the other replicas' confirmations: awaited by the
handler, not by the writer, so that a slow replica cannot slow every
write). A lone command is never delayed to wait for company. Validation
never comes here: it only reads.

Within one process the queue is what orders writes. Across replicas the
database is: each command reads the row under a lock (``FOR UPDATE`` on
PostgreSQL) and writes only if the row's version is still the one it read,
so a revoke and an extend racing on two replicas end in one of the two
serial orders, never a mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final, Generic, TypeVar

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from amplify_auth_client.contract import (
    IDEMPOTENCY_WINDOW,
    MAX_TTL_DAYS,
    USAGE_DAYS,
    generate_token,
    hash_token,
    iso,
    rotation_conflict,
    rotation_times,
)
from amplify_auth_server import authz
from amplify_auth_server.cache import TokenState
from amplify_auth_server.errors import (
    AuthServerError,
    Conflict,
    DatabaseUnavailable,
    IdempotencyKeyReused,
    NotFound,
    ServiceUnavailable,
    ShuttingDown,
)
from amplify_auth_server.events import Change
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.models import SYSTEM, Actor, TokenRecord, utcnow
from amplify_auth_server.propagation import Propagation
from amplify_auth_server.store import ConcurrentUpdate, TokenStore, aborted_for_others
from amplify_auth_server.telemetry import command_span
from amplify_auth_server.webhooks import EventType, WebhookOutbox

logger = logging.getLogger("amplify_auth_server.commands")

T = TypeVar("T")

DEFAULT_QUEUE_SIZE: Final = 10_000
#: Commands one transaction holds at most: a burst commits in few batches,
#: and no batch holds its locks, nor its callers, for long.
DEFAULT_BATCH_SIZE: Final = 256
_ATTEMPTS: Final = 5


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    """A command's result, and what its caller must still await before answering."""

    value: T
    pending: tuple[Awaitable[None], ...] = ()
    #: When the change committed (``time.perf_counter``); None if it changed
    #: no token. The caller measures from here to the last confirmation.
    committed: float | None = None


@dataclass(slots=True)
class Batch:
    """The transaction a batch shares, as one of its commands sees it.

    A command writes through :attr:`connection` and says, with
    :meth:`changed`, which token states every cache must learn once the
    batch commits; it never touches a cache itself.
    """

    store: TokenStore
    connection: AsyncConnection
    #: Whether changes go through the outbox (only with a shared tier).
    durable: bool
    changes: list[tuple[TokenRecord, Change, bool]] = field(default_factory=list)
    #: Where events go; None (no WEBHOOK_URLS): :meth:`notify` writes nothing.
    webhooks: WebhookOutbox | None = None
    #: Whether :meth:`notify` wrote outbox rows (the writer then wakes the sender).
    notified: bool = False

    def changed(self, record: TokenRecord, change: Change, *, written: bool = True) -> None:
        """After the commit, show ``record`` to every cache and announce ``change``.

        ``written`` False: nothing was written (the row already was so), but
        a previous attempt may have committed and then failed to reach a cache.
        """
        self.changes.append((record, change, written))

    async def notify(self, type_: EventType, events: Iterable[tuple[TokenRecord, Actor]]) -> None:
        """Say that ``type_`` happened to each ``(token, actor)``: a webhook to every
        configured URL, queued in this transaction (so in the command's savepoint:
        a command that fails sends nothing)."""
        if self.webhooks is None:
            return
        rows = self.webhooks.rows(type_, events, utcnow())
        if rows:
            await self.store.webhook_add(self.connection, rows)
            self.notified = True


class Command(ABC, Generic[T]):
    """A change, run only by the writer (or by a one-shot CLI process), inside a batch."""

    actor: Actor
    #: Whether commands of this kind waiting together run as one group
    #: (:meth:`run_group`).
    groupable: ClassVar[bool] = False

    @property
    def kind(self) -> str:
        return type(self).__name__

    @property
    def locks(self) -> tuple[str, ...]:
        """The ids of the existing rows this command changes (the writer locks a batch's
        rows in one order before running it)."""
        return ()

    @abstractmethod
    async def run(self, batch: Batch) -> T:
        """Do the change in ``batch``'s transaction (in a savepoint of its own)."""

    @classmethod
    async def run_group(cls, batches: Sequence[Batch], commands: Sequence[Any]) -> list[T]:
        """Do several commands of this kind at once (one statement per table, in
        one savepoint), each with its own batch. Only for :attr:`groupable` kinds.

        Only for commands that all but never fail, such as creates: if the
        group fails, the writer runs each command alone instead, so that
        the failure is one command's and not the group's.
        """
        raise NotImplementedError(f"{cls.__name__} is not groupable")


@dataclass(frozen=True, slots=True)
class Writer:
    """Runs batches of commands: one transaction, one savepoint per command (none for a
    batch that is one group), one commit, then one round of cache updates and events.
    ``propagation`` is None in a one-shot process, which has no caches."""

    store: TokenStore
    propagation: Propagation | None
    #: Where webhook events go; None: none are written (also in a one-shot process).
    webhooks: WebhookOutbox | None = None

    @property
    def durable(self) -> bool:
        return self.propagation is not None and self.propagation.durable

    async def run_one(self, command: Command[T]) -> T:
        """Run ``command`` alone and return its value, or raise its error."""
        (outcome,) = await self.run([command])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome.value  # type: ignore[no-any-return]

    async def run(self, commands: Sequence[Command[Any]]) -> list[Done[Any] | BaseException]:
        """Every command's outcome, in order: its :class:`Done`, or the error it failed with.

        A command that fails (a conflict, an unknown id) fails alone: its
        savepoint is rolled back and the others commit. The batch fails
        whole only when the database does; then nobody can tell whether it
        committed, so every token it changed is dropped from the caches.
        """
        if len(commands) > 1 and len(list(_groups(commands))) == 1:
            # The whole batch one group (a burst of creates): it needs no
            # savepoint, two statements fewer, since if it fails, the
            # transaction is rolled back whole and the batch runs again, a
            # savepoint per command.
            with contextlib.suppress(_GroupFailed):
                return await self._run(commands, savepoint=False)
        return await self._run(commands, savepoint=True)

    async def _run(
        self, commands: Sequence[Command[Any]], *, savepoint: bool
    ) -> list[Done[Any] | BaseException]:
        batches: list[Batch] = []
        outcomes: list[Any] = []
        try:
            async with self.store.transaction() as connection:
                if sum(1 for c in commands if c.locks) > 1:
                    await self.store.lock_all(connection, [i for c in commands for i in c.locks])
                for group in _groups(commands):
                    mine = [
                        Batch(self.store, connection, self.durable, webhooks=self.webhooks)
                        for _ in group
                    ]
                    together = (
                        await self._as_group(group, mine, savepoint=savepoint)
                        if len(group) > 1
                        else None
                    )
                    if together is not None:
                        outcomes += together
                    else:
                        outcomes += [
                            await self._in_savepoint(c, b) for c, b in zip(group, mine, strict=True)
                        ]
                    batches += mine
        except DatabaseUnavailable as exc:
            if len(commands) > 1 and aborted_for_others(exc):
                # Rolled back whole, nothing committed (lock_all makes this
                # rare): each command again, in a transaction of its own.
                return [outcome for c in commands for outcome in await self.run([c])]
            await self._forget(batches)
            failed: list[Done[Any] | BaseException] = [
                o if isinstance(o, AuthServerError) else exc for o in outcomes
            ]
            return failed + [exc] * (len(commands) - len(outcomes))
        if self.webhooks is not None and any(
            b.notified and not isinstance(o, BaseException)
            for b, o in zip(batches, outcomes, strict=True)
        ):
            self.webhooks.due.set()  # sent at once, not at the next poll
        return await self._propagate(batches, outcomes, time.perf_counter())

    @staticmethod
    async def _as_group(
        group: Sequence[Command[Any]], batches: list[Batch], *, savepoint: bool
    ) -> list[Any] | None:
        """The group's values, run at once in one savepoint; None to run them one by one.

        Without ``savepoint`` (the group is the whole batch), a failure is
        :class:`_GroupFailed`: the transaction has no point to roll back to.
        """
        try:
            if not savepoint:
                return await type(group[0]).run_group(batches, group)
            async with batches[0].connection.begin_nested():
                return await type(group[0]).run_group(batches, group)
        except (ConcurrentUpdate, IntegrityError):
            if not savepoint:
                raise _GroupFailed() from None
            return None  # a collision: one by one, each retrying alone
        except (DatabaseUnavailable, SQLAlchemyError, OSError):
            raise  # the transaction is gone: the whole batch fails
        except Exception:
            if not savepoint:
                raise _GroupFailed() from None
            return None  # one by one, so that a failing command fails alone

    @staticmethod
    async def _in_savepoint(command: Command[Any], batch: Batch) -> Any:
        for _ in range(_ATTEMPTS):
            batch.changes.clear()
            try:
                async with batch.connection.begin_nested():
                    return await command.run(batch)
            except (ConcurrentUpdate, IntegrityError):
                # The row moved on (another replica), or an id or hash
                # collided (another replica registered the same token; a
                # fresh random draw): a fresh attempt decides again.
                continue
            except (DatabaseUnavailable, SQLAlchemyError, OSError):
                raise  # the transaction is gone: the whole batch fails
            except AuthServerError as exc:
                batch.changes.clear()
                return exc
            except Exception as exc:
                # The writer must outlive any one command: log, answer, go on.
                logger.exception("command %s failed", command.kind)
                batch.changes.clear()
                return exc
        batch.changes.clear()
        return ServiceUnavailable("the token kept changing concurrently; retry")

    async def _propagate(
        self, batches: list[Batch], outcomes: list[Any], committed: float
    ) -> list[Any]:
        changes = [change for batch in batches for change in batch.changes]
        if self.propagation is None or not changes:
            return [o if isinstance(o, BaseException) else Done(o) for o in outcomes]
        applied = await self.propagation.apply_many(
            [(r.token_hash, TokenState.from_record(r), kind) for r, kind, _ in changes]
        )
        settled = [
            (record.token_hash, record.version)
            for (record, _, written), result in zip(changes, applied, strict=True)
            if written and result.stored and self.durable
        ]
        if settled:
            with contextlib.suppress(DatabaseUnavailable):
                # Left behind, a row only costs a harmless replay.
                await self.store.outbox_done_many(settled)
        results: list[Any] = []
        position = 0
        for batch, outcome in zip(batches, outcomes, strict=True):
            mine = applied[position : position + len(batch.changes)]
            position += len(batch.changes)
            if isinstance(outcome, BaseException):
                results.append(outcome)
                continue
            pending = tuple(a.confirmation for a in mine if a.confirmation is not None)
            results.append(Done(outcome, pending, committed if mine else None))
        return results

    async def _forget(self, batches: list[Batch]) -> None:
        if self.propagation is None:
            return
        for batch in batches:
            for record, kind, written in batch.changes:
                if written:
                    # The version the row has if the batch committed.
                    await self.propagation.forget(record.token_hash, kind, record.version)


class _GroupFailed(Exception):
    """A batch run as one group without a savepoint failed: roll it back, run it again."""


def _groups(commands: Sequence[Command[Any]]) -> Iterator[list[Command[Any]]]:
    """``commands`` in order, as runs of one kind that can run as a group, else alone."""
    for _, group in itertools.groupby(commands, lambda c: type(c) if c.groupable else object()):
        yield list(group)


@dataclass(frozen=True, slots=True)
class Minted:
    """The one object that ever holds a raw token, on its way to the response.

    ``token`` is None for a replay: the create that the idempotency key named
    happened earlier, and its raw token was in that answer only.
    """

    record: TokenRecord
    token: str | None = field(repr=False)

    @property
    def replayed(self) -> bool:
        return self.token is None


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A create's ``Idempotency-Key``, by hash, and its body's fingerprint
    (:func:`~amplify_auth_client.contract.create_fingerprint`)."""

    key_hash: str
    body_hash: str


@dataclass(frozen=True, slots=True)
class CreateToken(Command[Minted]):
    """Mint a token; with an idempotency key already used by this actor within
    the window, answer that create again instead (or refuse another body)."""

    groupable: ClassVar[bool] = True

    actor: Actor
    name: str
    scopes: tuple[str, ...]
    ttl_days: int | None = None
    description: str | None = None
    metadata: dict[str, str] | None = None
    idempotency: Idempotency | None = None
    owner: str | None = None
    #: The latest expiry allowed (a delegated creator's own, checked by
    #: authz.may_create): the new token's is held to it by the writer's clock too.
    not_after: datetime | None = None

    async def run(self, batch: Batch) -> Minted:
        (minted,) = await CreateToken.run_group([batch], [self])
        return minted

    @classmethod
    async def run_group(
        cls, batches: Sequence[Batch], commands: Sequence[CreateToken]
    ) -> list[Minted]:
        # Creates arriving together (a fleet onboarding) are a few statements,
        # not two per token: the batch's commit is then most of the cost.
        # Keys are decided here, in the single writer: a duplicate queued in
        # the same batch is answered from the first, one in a later batch
        # finds the first's row, and another replica's (same key, same
        # moment) collides on the primary key, so that this one retries
        # alone and finds it.
        now = utcnow()
        store, connection = batches[0].store, batches[0].connection
        known: dict[tuple[str, str], tuple[str, TokenRecord]] = {}
        if any(command.idempotency is not None for command in commands):
            since = now - IDEMPOTENCY_WINDOW
            await store.forget_creates_before(connection, since)
            known = await store.earlier_creates(
                connection, [k for c in commands if (k := c._key()) is not None], since
            )
        results: list[Minted] = []
        fresh: list[tuple[CreateToken, Minted]] = []
        for command in commands:
            key = command._key()
            if key is not None and key in known:
                assert command.idempotency is not None
                body_hash, record = known[key]
                if body_hash != command.idempotency.body_hash:
                    raise IdempotencyKeyReused()
                results.append(Minted(record=record, token=None))
                continue
            minted = command._mint(now)
            fresh.append((command, minted))
            results.append(minted)
            if key is not None:
                assert command.idempotency is not None
                known[key] = (command.idempotency.body_hash, minted.record)
        await store.insert_many(connection, [m.record for _, m in fresh])
        await store.record_many(
            connection,
            at=now,
            action="create",
            entries=[
                (command.actor, m.record.id, _describe(m.record), m.record.owner)
                for command, m in fresh
            ],
        )
        await store.remember_creates(
            connection,
            [
                (c.actor.id, c.idempotency.key_hash, c.idempotency.body_hash, m.record.id)
                for c, m in fresh
                if c.idempotency is not None
            ],
            now,
        )
        await batches[0].notify("token.created", [(m.record, c.actor) for c, m in fresh])
        return results

    def _key(self) -> tuple[str, str] | None:
        return None if self.idempotency is None else (self.actor.id, self.idempotency.key_hash)

    def _mint(self, now: datetime) -> Minted:
        # A fresh draw at each attempt: a collision of id or hash (vanishingly
        # rare) is then a retry that succeeds.
        raw = generate_token()
        expires_at = None if self.ttl_days is None else now + timedelta(days=self.ttl_days)
        if expires_at is not None and self.not_after is not None:
            expires_at = min(expires_at, self.not_after)
        record = TokenRecord.new(
            token_hash=hash_token(raw),
            name=self.name,
            scopes=self.scopes,
            created_by=self.actor.id,
            now=now,
            expires_at=expires_at,
            description=self.description,
            metadata=self.metadata,
            owner=self.owner,
        )
        return Minted(record=record, token=raw)


@dataclass(frozen=True, slots=True)
class Rotated:
    """A rotation's result: the successor (its raw token, unless a replay) and the
    old token as the rotation left it."""

    minted: Minted
    previous: TokenRecord


@dataclass(frozen=True, slots=True)
class RotateToken(Command[Rotated]):
    """Replace a token by a new one with the same name, scopes, owner, description,
    metadata and lifetime; the old one keeps working ``grace_seconds`` more (its
    expiry becomes that deadline, or stays its own if sooner), or is revoked at
    once for a grace of 0. Both rows change in one transaction, each audited.

    With an idempotency key already used by this actor within the window, the
    rotation it named is answered again (without the raw token), before the
    409 that rotating a rotated token would otherwise be.
    """

    actor: Actor
    token_id: str
    grace_seconds: int
    finish_when_idle_seconds: int | None = None
    idempotency: Idempotency | None = None

    @property
    def locks(self) -> tuple[str, ...]:
        return (self.token_id,)

    async def run(self, batch: Batch) -> Rotated:
        now = utcnow()
        store, connection = batch.store, batch.connection
        # Another owner's token, to a delegated admin, is no token at all.
        current = authz.visible(self.actor, await store.lock(connection, self.token_id))
        if current is None:
            raise NotFound.token(self.token_id)
        if self.idempotency is not None:
            since = now - IDEMPOTENCY_WINDOW
            await store.forget_creates_before(connection, since)
            key = (self.actor.id, self.idempotency.key_hash)
            earlier = (await store.earlier_creates(connection, [key], since)).get(key)
            if earlier is not None:
                body_hash, successor = earlier
                if body_hash != self.idempotency.body_hash:
                    raise IdempotencyKeyReused()
                return Rotated(Minted(record=successor, token=None), current)
        conflict = rotation_conflict(current.id, current.status(now), current.replaced_by)
        if conflict is not None:
            raise Conflict(conflict)
        expires_at, deadline = rotation_times(
            now=now,
            created_at=current.created_at,
            expires_at=current.expires_at,
            grace_seconds=self.grace_seconds,
        )
        authz.may_rotate(self.actor, current, expires_at)
        # A fresh draw at each attempt, as a create's.
        raw = generate_token()
        successor = TokenRecord.new(
            token_hash=hash_token(raw),
            name=current.name,
            scopes=current.scopes,
            created_by=self.actor.id,
            now=now,
            expires_at=expires_at,
            description=current.description,
            metadata=current.metadata,
            owner=current.owner,
            rotated_from=current.id,
        )
        await store.insert(connection, successor)
        await store.record(
            connection,
            at=now,
            actor=self.actor,
            action="create",
            token_id=successor.id,
            details={**_describe(successor), "rotated_from": current.id},
            owner=successor.owner,
        )
        values: dict[str, Any] = {
            "replaced_by": successor.id,
            "finish_when_idle_seconds": self.finish_when_idle_seconds,
        }
        if self.grace_seconds == 0:
            values["revoked_at"] = now
        else:
            values["expires_at"] = deadline
        updated = await store.update(connection, current, **values)
        await store.record(
            connection,
            at=now,
            actor=self.actor,
            action="rotate",
            token_id=current.id,
            # The previous expiry kept here: the row holds only the new one.
            details=_jsonable(
                {
                    **values,
                    "grace_seconds": self.grace_seconds,
                    "previous_expires_at": current.expires_at,
                }
            ),
            owner=current.owner,
        )
        if self.idempotency is not None:
            await store.remember_creates(
                connection,
                [
                    (
                        self.actor.id,
                        self.idempotency.key_hash,
                        self.idempotency.body_hash,
                        successor.id,
                    )
                ],
                now,
            )
        if batch.durable:
            await store.outbox_add(connection, updated.token_hash, updated.version, now)
        # The successor is a create, for webhook receivers too; the old token is
        # rotated (its data: the deadline, as expires_at or revoked_at, and its successor).
        await batch.notify("token.created", [(successor, self.actor)])
        await batch.notify("token.rotated", [(updated, self.actor)])
        # The old token's new deadline (or its revocation) reaches every tier and
        # subscriber; the successor, like any create, was never cached anywhere.
        batch.changed(updated, "rotated")
        return Rotated(Minted(record=successor, token=raw), updated)


@dataclass(frozen=True, slots=True)
class RegisterToken(Command[TokenRecord]):
    """Register a token minted elsewhere (``AUTH_ADMIN_TOKEN``), by hash, once."""

    actor: Actor
    token_hash: str = field(repr=False)
    name: str
    scopes: tuple[str, ...]

    async def run(self, batch: Batch) -> TokenRecord:
        record = await batch.store.find_hash(batch.connection, self.token_hash)
        if record is None:
            record = TokenRecord.new(
                token_hash=self.token_hash,
                name=self.name,
                scopes=self.scopes,
                created_by=self.actor.id,
                now=utcnow(),
                description="registered at start-up",
            )
            # Another replica registering it at the same moment: an
            # IntegrityError, and the retry finds theirs.
            await _insert(batch, record, self.actor, "register")
        # Someone may have tried this token before it was registered: its
        # "unknown" answer must not outlive the registration.
        batch.changed(record, "registered", written=False)
        return record


async def _insert(batch: Batch, record: TokenRecord, actor: Actor, action: str) -> None:
    """Insert ``record`` and its audit entry, in the batch's transaction."""
    await batch.store.insert(batch.connection, record)
    await batch.store.record(
        batch.connection,
        at=record.created_at,
        actor=actor,
        action=action,
        token_id=record.id,
        details=_describe(record),
        owner=record.owner,
    )


class _Change(Command[TokenRecord]):
    """A change to an existing row: read under lock, decide, write if unchanged."""

    token_id: str
    #: The webhook event a change that wrote sends; None: none.
    webhook: ClassVar[EventType | None] = None

    @property
    def locks(self) -> tuple[str, ...]:
        return (self.token_id,)

    @abstractmethod
    def change(self, current: TokenRecord, now: datetime) -> dict[str, Any] | None:
        """The column values to write, or None when there is nothing to do."""

    async def run(self, batch: Batch) -> TokenRecord:
        now = utcnow()
        # Another owner's token, to a delegated admin, is no token at all.
        current = authz.visible(self.actor, await batch.store.lock(batch.connection, self.token_id))
        if current is None:
            raise NotFound.token(self.token_id)
        values = self.change(current, now)
        if values is None:
            # Nothing to write; shown to the caches anyway, in case an earlier
            # attempt committed and then failed to reach one.
            batch.changed(current, self.change_kind, written=False)
            return current
        updated = await batch.store.update(batch.connection, current, **values)
        await batch.store.record(
            batch.connection,
            at=now,
            actor=self.actor,
            action=self.action,
            token_id=current.id,
            details=_jsonable(values),
            owner=current.owner,
        )
        if batch.durable:
            await batch.store.outbox_add(batch.connection, updated.token_hash, updated.version, now)
        if self.webhook is not None:
            await batch.notify(self.webhook, [(updated, self.actor)])
        batch.changed(updated, self.change_kind)
        return updated

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

    webhook: ClassVar[EventType | None] = "token.revoked"

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

    webhook: ClassVar[EventType | None] = "token.extended"

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
        if current.replaced_by is not None:
            # Its grace is the rotation's to end; extending it would revive a
            # token that has a successor, even one already expired.
            raise Conflict(
                f"token {current.id} was rotated (replaced by {current.replaced_by}); "
                f"extend {current.replaced_by} instead"
            )
        if current.expires_at is None:
            raise Conflict(f"token {current.id} never expires; there is nothing to extend")
        expires_at = max(current.expires_at, now) + timedelta(days=self.days)
        if expires_at > now + timedelta(days=MAX_TTL_DAYS):
            raise Conflict(
                f"token {current.id} would then expire more than {MAX_TTL_DAYS} days from now"
            )
        bound = authz.extend_bound(self.actor)
        if bound is not None and expires_at > bound:
            raise authz.beyond_bound()
        return {"expires_at": expires_at}


@dataclass(frozen=True, slots=True)
class FinishRotation(_Change):
    """End a rotated token's grace early: it went unused for its ``finish_when_idle_seconds``
    (counting SDKs' cache hits). Found by :mod:`amplify_auth_server.rotations`'s scan;
    decided again here, under the row lock, so that a use written since the scan
    keeps the token, and replicas scanning at once revoke it once."""

    token_id: str
    #: When it was rotated (its successor's creation, which never changes).
    rotated_at: datetime
    actor: Actor = SYSTEM
    webhook: ClassVar[EventType | None] = "token.rotation_finished"

    @property
    def action(self) -> str:
        return "rotation_finished"

    @property
    def change_kind(self) -> Change:
        return "revoked"

    def change(self, current: TokenRecord, now: datetime) -> dict[str, Any] | None:
        if not current.idle_in_grace(now, self.rotated_at):
            return None
        return {"revoked_at": now}


@dataclass(frozen=True, slots=True)
class Revoked:
    """What a bulk revocation did, by id, in the order asked."""

    revoked: tuple[str, ...]
    already_revoked: tuple[str, ...]
    not_found: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RevokeMany(Command[Revoked]):
    """Revoke up to ``MAX_BULK_IDS`` tokens at once: one audit entry and one event each,
    in a few statements rather than a transaction each."""

    actor: Actor
    token_ids: tuple[str, ...]

    @property
    def locks(self) -> tuple[str, ...]:
        return self.token_ids

    async def run(self, batch: Batch) -> Revoked:
        now = utcnow()
        revoked, existing = await batch.store.revoke_many(
            batch.connection, self.token_ids, now, owner=authz.scope_of(self.actor)
        )
        details = {"revoked_at": iso(now)}
        await batch.store.record_many(
            batch.connection,
            at=now,
            action="revoke",
            entries=[(self.actor, record.id, details, record.owner) for record in revoked],
        )
        if batch.durable:
            await batch.store.outbox_add_many(batch.connection, revoked, now)
        await batch.notify("token.revoked", [(record, self.actor) for record in revoked])
        for record in revoked:
            batch.changed(record, "revoked")
        now_revoked = {record.id for record in revoked}
        return Revoked(
            revoked=tuple(i for i in self.token_ids if i in now_revoked),
            already_revoked=tuple(
                i for i in self.token_ids if i in existing and i not in now_revoked
            ),
            not_found=tuple(i for i in self.token_ids if i not in existing),
        )


@dataclass(frozen=True, slots=True)
class NotifyExpiring(Command[tuple[str, ...]]):
    """Send ``token.expiring`` for those of ``token_ids`` still owed it (see
    :meth:`TokenStore.expiring_conditions`), remember it on each token, and audit it:
    the ids warned now. Found by :mod:`amplify_auth_server.expiring`'s scan;
    two replicas scanning at once warn each token once (the update's
    conditions decide)."""

    #: The audit action, for ``GET /auth/audit?action=expiring_notified``.
    action: ClassVar[str] = "expiring_notified"

    token_ids: tuple[str, ...]
    horizon: timedelta
    actor: Actor = SYSTEM

    @property
    def locks(self) -> tuple[str, ...]:
        return self.token_ids

    async def run(self, batch: Batch) -> tuple[str, ...]:
        now = utcnow()
        # In id order, as every writer locks: alone in a batch the writer does
        # not lock for it, and the update would take its rows in plan order.
        await batch.store.lock_all(batch.connection, self.token_ids)
        warned = await batch.store.mark_expiring(
            batch.connection, self.token_ids, now, now + self.horizon
        )
        await batch.store.record_many(
            batch.connection,
            at=now,
            action=self.action,
            entries=[
                (self.actor, r.id, _jsonable({"expires_at": r.expires_at}), r.owner) for r in warned
            ],
        )
        await batch.notify("token.expiring", [(record, self.actor) for record in warned])
        return tuple(record.id for record in warned)


@dataclass(frozen=True, slots=True)
class RecordRefusal(Command[None]):
    """Write down that ``actor`` was refused ``attempt`` on ``token_id``: who tried
    what on which, and the status it got, nothing about the target itself (an
    unknown id and another owner's token are written alike). The entry is
    its actor's owner's, so a delegated admin sees its own refusals."""

    actor: Actor
    attempt: str
    token_id: str | None
    status: int
    error: str

    async def run(self, batch: Batch) -> None:
        await batch.store.record(
            batch.connection,
            at=utcnow(),
            actor=self.actor,
            action="refused",
            token_id=self.token_id,
            details={"attempt": self.attempt, "status": self.status, "error": self.error},
            owner=self.actor.owner,
        )


@dataclass(frozen=True, slots=True)
class RecordDenials(Command[None]):
    """A window's failed admin authentications, one audit row per client, token, route
    and status, each with its count (see :mod:`amplify_auth_server.denials`)."""

    #: The audit action, for ``GET /auth/audit?action=admin_auth_failed``.
    action: ClassVar[str] = "admin_auth_failed"

    entries: tuple[tuple[Actor, str | None, dict[str, Any]], ...]
    actor: Actor = SYSTEM

    async def run(self, batch: Batch) -> None:
        await batch.store.record_many(
            batch.connection,
            at=utcnow(),
            action=self.action,
            # Global: whose the presented token is, a failed authentication
            # does not establish; the admin's audit log has these rows.
            entries=[(actor, token_id, details, None) for actor, token_id, details in self.entries],
        )


@dataclass(frozen=True, slots=True)
class RecordUsage(Command[None]):
    """Add one flush's validations to each token's day and move its ``last_used_at``
    up to ``at`` (see :mod:`amplify_auth_server.usage`).

    No version moves and no cache learns it (nothing a validation answers
    changed), and no audit row is written: usage is an observation, not a
    change of what a token may do, and a row per flush would bury the log.
    """

    #: (token id, count), sorted by id: the order rows are locked in.
    uses: tuple[tuple[str, int], ...]
    at: datetime
    actor: Actor = SYSTEM

    @property
    def locks(self) -> tuple[str, ...]:
        return tuple(token_id for token_id, _ in self.uses)

    async def run(self, batch: Batch) -> None:
        keep_from = (self.at - timedelta(days=USAGE_DAYS - 1)).date()
        await batch.store.record_usage(batch.connection, self.uses, self.at, keep_from)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    # Times as the rest of the API writes them: UTC with a Z.
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in values.items()}


def _describe(record: TokenRecord) -> dict[str, Any]:
    return _jsonable(
        {"name": record.name, "scopes": list(record.scopes), "expires_at": record.expires_at}
    )


_STOP: Final = object()


class CommandQueue:
    """One queue, one writer task, one future per command; commands waiting together
    are run together, as one batch (see :class:`Writer`)."""

    def __init__(
        self,
        writer: Writer,
        metrics: Metrics,
        *,
        maxsize: int = DEFAULT_QUEUE_SIZE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        between_batches: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._writer = writer
        self._batch_size = batch_size
        self._between_batches = between_batches
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
        if done.committed is not None:
            self._metrics.propagation.observe(time.perf_counter() - done.committed)
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
            batch = [await self._queue.get()]
            # Whatever else is waiting joins it, up to the bound: never a wait
            # for more, so a lone command runs at once.
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            stop = any(command is _STOP for command, _ in batch)
            work = [(command, future) for command, future in batch if command is not _STOP]
            if work:
                await self._execute(work)
                await self._between()
            if stop:
                return

    async def _between(self) -> None:
        """What must run with no batch under way (the embedded database's WAL
        restart: amplify_auth_server.checkpoints); its failure fails no command."""
        if self._between_batches is None:
            return
        try:
            await self._between_batches()
        except Exception:
            logger.exception("the writer's work between two batches failed")

    async def _execute(self, work: list[tuple[Any, asyncio.Future[Any] | None]]) -> None:
        commands = [command for command, _ in work]
        self._metrics.batch_size.observe(len(commands))
        try:
            outcomes = await self._writer.run(commands)
        except Exception as exc:  # a bug of ours: every caller still gets an answer
            logger.exception("a batch of %d commands failed", len(commands))
            outcomes = [exc] * len(commands)
        for (command, future), outcome in zip(work, outcomes, strict=True):
            assert future is not None
            if isinstance(outcome, BaseException):
                kind = type(outcome).__name__ if isinstance(outcome, AuthServerError) else "error"
                self._metrics.commands.labels(command.kind, kind).inc()
                _settle(future, exc=outcome)
            else:
                self._metrics.commands.labels(command.kind, "ok").inc()
                _settle(future, result=outcome)


def _settle(
    future: asyncio.Future[Any], *, result: Any = None, exc: BaseException | None = None
) -> None:
    if future.done():  # cancelled: the loop is shutting down
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
