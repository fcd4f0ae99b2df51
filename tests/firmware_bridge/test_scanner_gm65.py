import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge import scanner_gm65 as gm65
from firmware_bridge.scanner_gm65 import Command, FrameType, Reply
from tests.firmware_bridge.framing import frames_in


def test_golden_commands_from_the_spec():
    assert gm65.TRIGGER == bytes.fromhex("7E 00 08 01 00 02 01 AB CD")
    assert gm65.SAVE == bytes.fromhex("7E 00 09 01 00 00 00 DE C8")
    assert gm65.AIM_ON == bytes.fromhex("7E 00 08 01 00 D0 80 AB CD")
    assert gm65.AIM_OFF == bytes.fromhex("7E 00 08 01 00 D0 00 AB CD")


@pytest.mark.parametrize("frame, wire", [
    # CRC-16/XMODEM over the bytes after 7E reproduces every checksum the sources print
    (Command(FrameType.SAVE, 0x0000, b"\x00"), "7E 00 09 01 00 00 00 DE C8"),
    (Command(FrameType.WRITE, 0x002A, b"\x39\x01"), "7E 00 08 02 00 2A 39 01 A7 EA"),  # 9600 baud
    (Command(FrameType.READ, 0x002A, b"\x02"), "7E 00 07 01 00 2A 02 D8 0F"),  # find the baud rate
])
def test_golden_crc(frame, wire):
    assert gm65.encode(frame, crc=True) == bytes.fromhex(wire)
    assert gm65.decode_command(bytes.fromhex(wire)) == (len(bytes.fromhex(wire)), frame)


def test_crc16_xmodem_check_value():
    assert gm65.crc16_xmodem(b"123456789") == 0x31C3  # the catalogued check value of CRC-16/XMODEM


def test_golden_trigger_reply():
    wire = bytes.fromhex("02 00 00 01 00 33 31")
    assert gm65.encode_reply() == wire
    assert gm65.decode_reply(wire) == (7, Reply(b"\x00"))
    assert gm65.decode_reply(wire)[1].ok


def test_read_replies_carry_the_zone_bytes():
    wire = gm65.encode_reply(b"\x80\x05")
    consumed, reply = gm65.decode_reply(wire + b"PK1\r")
    assert consumed == len(wire) and reply == Reply(b"\x80\x05") and not reply.ok


def test_commands_with_no_crc_decode():
    assert gm65.decode_command(gm65.TRIGGER) == (9, Command(FrameType.WRITE, gm65.ZONE_TRIGGER, b"\x01"))
    assert gm65.read(0x00D0, 1) == bytes.fromhex("7E 00 07 01 00 D0 01 AB CD")
    assert gm65.write(0x00D0, b"\x80", crc=True)[-2:] != gm65.NO_CRC


@pytest.mark.parametrize("wire, consumed", [
    ("41 42 7E 00 08", 2),  # skip to 7E
    ("41 42", 2),
    ("7E 01 08 01 00 02 01 AB CD", 1),  # not 7E 00
    ("7E 00 05 01 00 02 01 AB CD", 1),  # unknown type
    ("7E 00 08 00 00 02 AB CD", 1),  # no data
    ("7E 00 08 01 00 02 01 AB CE", 1),  # neither CRC nor AB CD
    ("7E 00 08 01 00 02", 0),  # incomplete
    ("7E", 0),
])
def test_command_resynchronisation(wire, consumed):
    assert gm65.decode_command(bytes.fromhex(wire)) == (consumed, None)


@pytest.mark.parametrize("wire, consumed", [
    ("41 02 00 00 01 00 33 31", 1),
    ("02 00 01 01 00 33 31", 1),
    ("02 00 00 01 00 33 32", 1),  # bad CRC
    ("02 00 00 00 33 31", 1),  # no data
    ("02 00 00 01 00 33", 0),
    ("02 00", 0),
])
def test_reply_resynchronisation(wire, consumed):
    assert gm65.decode_reply(bytes.fromhex(wire)) == (consumed, None)


def test_encoders_refuse_bad_frames():
    with pytest.raises(ValueError):
        gm65.encode(Command(FrameType.WRITE, 0x10000, b"\x00"))
    with pytest.raises(ValueError):
        gm65.encode(Command(FrameType.WRITE, 0, b""))
    with pytest.raises(ValueError):
        gm65.encode_reply(b"")


commands = st.builds(Command, st.sampled_from(list(FrameType)), st.integers(0, 0xFFFF), st.binary(min_size=1, max_size=30))


@given(st.lists(st.tuples(commands, st.booleans()), max_size=5), st.binary(max_size=10).filter(lambda b: 0x7E not in b))
def test_commands_survive_noise(sent, noise):
    wire = b"".join(noise + gm65.encode(c, crc=crc) for c, crc in sent)
    found, _ = frames_in(wire, gm65.decode_command, lambda rest: False)
    assert [f for _, f in found] == [c for c, _ in sent]


@given(st.binary(min_size=1, max_size=40))
def test_reply_roundtrip(data):
    assert gm65.decode_reply(gm65.encode_reply(data)) == (len(data) + 6, Reply(data))


@given(st.binary(max_size=300))
def test_decoders_never_raise(buf):
    for decoder, head in ((gm65.decode_command, b"\x7e"), (gm65.decode_reply, b"\x02")):
        rest = bytearray(buf)
        while rest:
            consumed, frame = decoder(rest)
            assert 0 <= consumed <= len(rest)
            if consumed == 0:
                assert rest[:1] == head
                break
            del rest[:consumed]
