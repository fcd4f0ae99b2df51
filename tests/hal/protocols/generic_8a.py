"""Contract adapter: the generic 8A/80 driver against its wire-level simulator.

A 50-channel model, so the contract also covers the 11-byte query-all reply; the profile's default
status byte order (first byte first) is what the simulator is set to.
"""

from __future__ import annotations

from hal.lockbank import Polarity
from simulators.generic_8a import Generic8ASimulator
from tests.hal.contract import SimHandle

PROTOCOL = "generic-8a"
BOARDS = (1, 32)
CHANNELS = 50
HAS_ITEM_SENSORS = False


async def start(transport: str, polarity: Polarity, **profile_overrides) -> SimHandle:
    sim = Generic8ASimulator(BOARDS, CHANNELS, closed_is_1=polarity is Polarity.CLOSED_IS_1, first_byte_first=True)
    served = await (sim.serve_pty() if transport == "pty" else sim.serve_tcp())
    return SimHandle(
        url=served.url, close=sim.close,
        open_door=sim.open_door, close_door=sim.close_door, put_item=None, remove_item=None,
        set_jammed=sim.set_jammed, pulses=lambda b, c: sim.door(b, c).pulses,
        drop_replies=sim.drop_replies, garbage_before_reply=lambda: sim.garbage_before_reply(),
        answer_from_wrong_address=lambda n: sim.answer_from_wrong_address(n, then_correct=True),
        stop_answering=sim.stop_answering, resume_answering=sim.resume_answering,
    )
