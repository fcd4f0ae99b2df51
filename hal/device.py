"""What every ``hal`` device shares: an explicit life of ``open()`` and ``close()``.

Subclasses must override ``_open()`` and ``_close()``. A device is never opened as a side effect of
something else and never closed silently in ``__del__`` (STYLE.md): use ``await device.open()`` /
``await device.close()`` or ``async with device:``.
"""

from __future__ import annotations

import abc
from typing import Self


class Device(abc.ABC):
    def __init__(self) -> None:
        self._is_open = False

    @property
    def is_open(self) -> bool:
        return self._is_open

    async def open(self) -> None:
        if not self._is_open:
            await self._open()
            self._is_open = True

    async def close(self) -> None:
        if self._is_open:
            self._is_open = False
            await self._close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def _open(self) -> None: ...

    @abc.abstractmethod
    async def _close(self) -> None: ...
