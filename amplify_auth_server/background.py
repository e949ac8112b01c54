"""Loops that run for the app's lifetime: started at start-up, cancelled at shut-down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from typing import ClassVar, Final

from redis.exceptions import RedisError

from amplify_auth_server.errors import AuthServerError

#: Waits between attempts to reconnect to Redis; the last one repeats.
RECONNECT_DELAYS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)


class Background(ABC):
    """A task named ``task_name`` running :meth:`run` until :meth:`stop`."""

    task_name: ClassVar[str]
    _task: asyncio.Task[None] | None = None

    @abstractmethod
    async def run(self) -> None: ...

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class Periodic(Background):
    """:meth:`once` every :attr:`interval` seconds, until stopped; a failed round is
    logged (as ``what`` failing, on ``logger``) and the next one tries again."""

    interval: float
    #: What a round does, as its failure is logged ("the outbox replay").
    what: ClassVar[str]
    logger: ClassVar[logging.Logger]

    @abstractmethod
    async def once(self) -> object:
        """One round."""

    async def run(self) -> None:
        while True:
            try:
                await self.once()
            except AuthServerError as exc:
                # Expected in an outage (the database away): no traceback.
                self.logger.warning("%s failed (%s); retrying", self.what, exc.code)
            except Exception:
                self.logger.exception("%s failed; retrying", self.what)
            await asyncio.sleep(self.interval)


class RedisFollower(Background):
    """A loop holding one Redis connection whose loss must never pass unnoticed.

    :meth:`follow` connects and serves until it fails; then :meth:`lost` undoes
    whatever relied on the connection, the loss is logged once (not once per
    failed attempt), and the loop reconnects after a growing delay. The
    invalidation listener and the event stream reader are both this loop.
    """

    logger: ClassVar[logging.Logger]
    #: Logged, with the error's type, when a working connection is lost.
    lost_message: ClassVar[str]
    #: Errors that mean "Redis is gone", not "our code failed".
    failures: ClassVar[tuple[type[BaseException], ...]] = (RedisError, OSError)

    @property
    @abstractmethod
    def following(self) -> bool:
        """Whether the connection worked up to now."""

    @abstractmethod
    async def follow(self) -> None:
        """Connect and serve; return or raise when the connection ends."""

    @abstractmethod
    def lost(self) -> None:
        """Stop trusting anything the connection vouched for."""

    async def stop(self) -> None:
        await super().stop()
        self.lost()

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                await self.follow()
            except asyncio.CancelledError:
                raise
            except self.failures as exc:
                if self.following:
                    self.logger.warning(self.lost_message, type(exc).__name__)
                    attempt = 0
            except Exception:
                self.logger.exception("%s failed; restarting it", self.task_name)
            finally:
                self.lost()
            await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
            attempt += 1
