"""Each lock codec tells a reply with a wrong checksum from noise, for the bus statistics (the
decoders themselves skip both alike and resynchronise)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import cu48
from firmware_bridge import generic_8a as g8a
from firmware_bridge import kerong_cu12 as cu12
from firmware_bridge import kerong_cu16 as cu16

BEFORE = cu12.DataPosition.BEFORE_SUM
CASES = [
    ("kerong-cu16", bytes.fromhex("02 00 35 05 00 03 00 03 42"), cu16.reply_checksum_error, -1),
    ("kerong-cu12", bytes.fromhex("02 00 00 80 10 02 03 99 02 00"), cu12.reply_checksum_error, 7),
    ("kerong-cu12 data before sum", cu12.encode(cu12.Reply(0, 0, cu12.Command.STATUS, cu12.Ask.SUCCESS, b"\x02\x00"),
                                                data_position=BEFORE),
     lambda b: cu12.reply_checksum_error(b, data_position=BEFORE), -1),
    ("cu48", cu48.encode(cu48.Reply(3, 0, cu48.Status.SUCCESS, bytes.fromhex("01 00 00 00 00 80"))),
     cu48.reply_checksum_error, -1),
    ("8a query all", bytes.fromhex("80 01 00 00 02 33 B0"), g8a.reply_checksum_error, -1),
    ("8a open reply", bytes.fromhex("8A 01 01 00 8A"), g8a.reply_checksum_error, -1),
]


@pytest.mark.parametrize("name,frame,bad,at", CASES, ids=[c[0] for c in CASES])
def test_a_good_reply_is_not_an_error_and_a_wrong_checksum_is(name, frame, bad, at):
    assert not bad(frame)
    broken = bytearray(frame)
    broken[at] ^= 0x01
    assert bad(broken)
    assert bad(bytes(broken) + b"\x02\x99")  # whatever follows does not matter
    assert not bad(broken[:-1])  # an incomplete frame is not (yet) an error
    assert not bad(b"\x55" + bytes(broken))  # noise before a frame is garbage, not a checksum error


@pytest.mark.parametrize("bad", [c[2] for c in CASES])
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_never_raises_on_any_bytes(bad, data):
    assert bad(data) in (True, False)
