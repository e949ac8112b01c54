"""Loops that run for the app's lifetime: started at start-up, cancelled at shut-down."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from typing import ClassVar


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
