"""Contract adapter: the CU48 driver against its wire-level simulator."""

from __future__ import annotations

from hal.lockbank import Polarity
from simulators.cu48 import CU48Simulator
from tests.hal.contract import SimHandle

PROTOCOL = "cu48"
BOARDS = (0, 7)
CHANNELS = 48
HAS_ITEM_SENSORS = False


async def start(transport: str, polarity: Polarity, **profile_overrides) -> SimHandle:
    sim = CU48Simulator(BOARDS, CHANNELS, closed_is_1=polarity is Polarity.CLOSED_IS_1)
    served = await (sim.serve_pty() if transport == "pty" else sim.serve_tcp())
    return SimHandle(
        url=served.url, close=sim.close,
        open_door=sim.open_door, close_door=sim.close_door, put_item=None, remove_item=None,
        set_jammed=sim.set_jammed, pulses=lambda b, c: sim.door(b, c).pulses,
        drop_replies=sim.drop_replies, garbage_before_reply=lambda: sim.garbage_before_reply(),
        answer_from_wrong_address=lambda n: sim.answer_from_wrong_address(n, then_correct=True),
        stop_answering=sim.stop_answering, resume_answering=sim.resume_answering,
    )
