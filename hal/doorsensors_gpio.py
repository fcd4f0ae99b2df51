"""Door sensors wired to GPIO pins through gpiozero, for lock boards without door feedback.

Wiring, one switch per door (hardware-protocols.md §5)::

    GPIO pin ──── reed switch ──── GND        (the pin's internal pull-up holds it high)

With a normally-open reed switch that the door magnet closes, a closed door pulls the pin low:
gpiozero's ``Button(pin, pull_up=True)`` reads "pressed". In :class:`~hal.lockbank.Polarity` terms
(the pin's logic level when the door is closed) that is ``CLOSED_IS_0``, the default here. A
normally-closed switch (opened by the magnet) reads the other way round: ``CLOSED_IS_1``. The
internal pull-up is weak; long cable runs want an external pull-up to 3.3 V.

Pins are anything gpiozero accepts: ``17``, ``"GPIO17"``, ``"BOARD11"``. The pin library comes from
gpiozero's own choice, overridable with ``GPIOZERO_PIN_FACTORY`` (``mock`` in tests and the demo) or
the ``pin_factory`` argument. gpiozero is imported only when :meth:`GpioDoorSensors.open` runs, so
it is needed only where this backend is configured.

:class:`WithGpioDoorSensors` puts such sensors under any :class:`~hal.lockbank.LockBank`: unlocks
go to the boards, door states come from the pins.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hal.errors import DeviceIOError, DeviceOpenError, DeviceUnavailable
from hal.lockbank import BoardStatus, DoorState, LockBank, Polarity

log = logging.getLogger(__name__)

Pin = int | str
DoorKey = tuple[int, int]  # (board, channel)


class GpioDoorSensors:
    """One gpiozero ``Button`` per door, keyed by ``(board, channel)``.

    Open with ``open()`` (or ``with sensors:``) before reading; ``close()`` releases the pins.
    ``bounce_time`` (seconds; None: no debounce) only affects gpiozero's edge events, not reads.
    """

    def __init__(
        self,
        pins: Mapping[DoorKey, Pin],
        *,
        polarity: Polarity = Polarity.CLOSED_IS_0,
        bounce_time: float | None = None,
        pin_factory: Any = None,
    ) -> None:
        if not pins:
            raise ValueError("no door sensor pins configured")
        for key, pin in pins.items():
            if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, int) for k in key)):
                raise ValueError(f"door sensor keys are (board, channel), not {key!r}")
            if isinstance(pin, bool) or not isinstance(pin, (int, str)):
                raise ValueError(f"pin for door {key} must be a number or a name, not {pin!r}")
        self.pins: dict[DoorKey, Pin] = dict(pins)
        self.polarity = polarity
        self.bounce_time = bounce_time
        self.pin_factory = pin_factory
        self._buttons: dict[DoorKey, Any] = {}
        self._gpio_error: type[Exception] = Exception  # gpiozero's GPIOZeroError once imported

    @property
    def is_open(self) -> bool:
        return bool(self._buttons)

    def open(self) -> None:
        if self._buttons:
            return
        try:
            from gpiozero import Button
            from gpiozero.exc import BadPinFactory, GPIOZeroError
        except ImportError as err:
            raise DeviceUnavailable(f"GPIO door sensors need gpiozero: {err}") from err
        buttons: dict[DoorKey, Any] = {}
        try:
            for key, pin in self.pins.items():
                buttons[key] = Button(
                    pin, pull_up=True, bounce_time=self.bounce_time, pin_factory=self.pin_factory
                )
        except BadPinFactory as err:
            self._release(buttons)
            raise DeviceUnavailable(f"no GPIO pin library usable here: {err}") from err
        except (GPIOZeroError, ValueError) as err:
            self._release(buttons)
            raise DeviceOpenError(f"door sensor pin {pin!r} for board {key[0]} channel {key[1]}: {err}") from err
        self._buttons = buttons
        self._gpio_error = GPIOZeroError

    @staticmethod
    def _release(buttons: dict[DoorKey, Any]) -> None:
        for button in buttons.values():
            button.close()

    def close(self) -> None:
        buttons, self._buttons = self._buttons, {}
        self._release(buttons)

    def __enter__(self) -> GpioDoorSensors:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def is_closed(self, board: int, channel: int) -> bool:
        """True when the door's switch says closed (see the module docstring for polarity)."""
        if not self._buttons:
            raise RuntimeError("GPIO door sensors are not open")
        try:
            button = self._buttons[(board, channel)]
        except KeyError:
            raise KeyError(f"no door sensor pin for board {board} channel {channel}") from None
        try:
            pin_low = bool(button.is_pressed)  # pull-up: pressed = pin at GND
        except self._gpio_error as err:
            raise DeviceIOError(f"door sensor board {board} channel {channel}: {err}") from err
        return pin_low if self.polarity is Polarity.CLOSED_IS_0 else not pin_low

    def door(self, board: int, channel: int) -> DoorState:
        return DoorState.CLOSED if self.is_closed(board, channel) else DoorState.OPEN

    def describe(self) -> dict[str, str]:
        return {
            "door_sensors": "gpio",
            "door_polarity": self.polarity.value,
            "door_pins": ",".join(f"{b}/{c}={p}" for (b, c), p in sorted(self.pins.items())),
        }


class WithGpioDoorSensors(LockBank):
    """``bank`` for unlocks, ``sensors`` for doors. Items are always None (no item sensors).

    Every door of the bank needs a pin, and every pin a door of the bank. ``read_status`` never
    talks to the boards, so a dead lock board shows up as an unlock that does not open the door.
    Opening opens the sensors first, then the bank; closing closes both.
    """

    def __init__(self, bank: LockBank, sensors: GpioDoorSensors) -> None:
        profile = bank.profile
        doors = {(b, c) for b in profile.boards for c in range(profile.channels_per_board)}
        missing = sorted(doors - set(sensors.pins))
        extra = sorted(set(sensors.pins) - doors)
        if missing or extra:
            raise ValueError(f"door sensor pins do not match the bank: missing {missing}, not on the bank {extra}")
        super().__init__(replace(profile, has_item_sensors=False))
        self.bank = bank
        self.sensors = sensors

    async def _open(self) -> None:
        self.sensors.open()
        try:
            await self.bank.open()
        except BaseException:
            self.sensors.close()
            raise

    async def _close(self) -> None:
        try:
            await self.bank.close()
        finally:
            self.sensors.close()

    async def _unlock(self, board: int, channel: int) -> None:
        await self.bank.unlock(board, channel)

    async def _read_status(self, board: int) -> BoardStatus:
        n = self.profile.channels_per_board
        doors = tuple(self.sensors.door(board, channel) for channel in range(n))
        return BoardStatus(board=board, doors=doors, items=(None,) * n)

    def describe(self) -> dict[str, str]:
        info = self.bank.describe()
        info.update(self.sensors.describe())
        return info
