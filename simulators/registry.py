"""One wire-level simulator per lock protocol, started by name (for the demo and the CLI)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

#: protocol name (as in hal.lockbank.BACKENDS) -> "module:runner"
SIMULATORS: dict[str, str] = {
    "kerong-cu16": "simulators.kerong_cu16:run_lockboard_sim",
    "kerong-cu12": "simulators.kerong_cu12:run_kerong_cu12_sim",
    "cu48": "simulators.cu48:run_cu48_sim",
    "generic-8a": "simulators.generic_8a:run_generic_8a_sim",
    "modbus-relay": "simulators.modbus_relay:run_modbus_sim",
}


async def run_simulator(protocol: str, boards: Any, doors_per_board: int, polarity: Any = "closed_is_1",
                        transport: str = "pty", **options: Any) -> Any:
    """Start the simulator of ``protocol``; returns an object with ``.url``, ``.sim`` and ``close()``.

    ``options`` (``baudrate``, ``byte_order``, ``pace``...) go to the runners that take them.
    """
    try:
        module_name, _, function = SIMULATORS[protocol].partition(":")
    except KeyError:
        raise ValueError(f"no simulator for {protocol!r}; available: {', '.join(sorted(SIMULATORS))}") from None
    runner = getattr(importlib.import_module(module_name), function)
    accepted = inspect.signature(runner).parameters
    kwargs = {k: getattr(v, "value", v) for k, v in options.items() if k in accepted and v is not None}
    return await runner(tuple(boards), doors_per_board, getattr(polarity, "value", polarity), transport, **kwargs)
