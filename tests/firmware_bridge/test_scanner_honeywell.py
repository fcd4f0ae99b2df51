import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge import scanner_honeywell as hw
from firmware_bridge.scanner_honeywell import MenuCommand, MenuReply, MenuStatus, Storage, Trigger
from tests.firmware_bridge.framing import frames_in

ACK, ENQ, NAK = b"\x06", b"\x05", b"\x15"


def test_golden_trigger_bytes():
    assert hw.TRIGGER_ON == bytes.fromhex("16 54 0D")
    assert hw.TRIGGER_OFF == bytes.fromhex("16 55 0D")
    assert Trigger(True).encode() == hw.TRIGGER_ON and Trigger(False).encode() == hw.TRIGGER_OFF


def test_golden_menu_command_from_the_spec():
    # §3.2: \x16M\x0D232BAD9. sets 115200 baud, stored in flash
    assert hw.menu_command("232BAD", 9, permanent=True) == b"\x16M\r232BAD9."
    assert hw.menu_command("232BAD", "9") == b"\x16M\r232BAD9!"
    assert hw.menu_command("TRGSTO", "?") == b"\x16M\rTRGSTO?!"
    assert MenuCommand("TRGSTO", "5000", Storage.PERMANENT).encode() == b"\x16M\rTRGSTO5000."


def test_read_timeout_command():
    assert hw.read_timeout_command(5) == b"\x16M\rTRGSTO5000!"
    assert hw.read_timeout_command(0.25, permanent=True) == b"\x16M\rTRGSTO250."
    assert hw.read_timeout_command(300) == b"\x16M\rTRGSTO300000!"
    for bad in (-1, 300.001):
        with pytest.raises(ValueError):
            hw.read_timeout_command(bad)


@pytest.mark.parametrize("setting, data", [
    ("TRGST", "1"), ("trgsto", "1"), ("TRGSTO1", ""), ("TRGSTO", "5.0"), ("TRGSTO", "1!"),
    ("TRGSTO", "1;2"), ("TRGSTO", "\r"), ("TRGSTO", "取"),
])
def test_malformed_menu_commands_are_refused(setting, data):
    with pytest.raises(ValueError):
        hw.menu_command(setting, data)


@pytest.mark.parametrize("wire, consumed, command", [
    (b"\x16T\r", 3, Trigger(True)),
    (b"\x16U\rREST", 3, Trigger(False)),
    (b"\x16M\r232BAD9.", 11, MenuCommand("232BAD", "9", Storage.PERMANENT)),
    (b"\x16M\rTRGSTO?!\x16T\r", 11, MenuCommand("TRGSTO", "?", Storage.VOLATILE)),
    (b"\x16M\rTRGSTO50", 0, None),  # no storage character yet
    (b"\x16", 0, None),
    (b"\x16T", 0, None),
    (b"\x16TX", 1, None),  # not a command: drop the SYN
    (b"\x16X\r", 1, None),
    (b"noise\x16T\r", 5, None),  # skip to the next SYN
    (b"noise", 5, None),
])
def test_golden_host_commands(wire, consumed, command):
    assert hw.decode_command(wire) == (consumed, command)


@pytest.mark.parametrize("wire, consumed, reply", [
    # status before the storage character
    (b"TRGSTO5000\x06!", 12, MenuReply("TRGSTO", "5000", MenuStatus.ACK, Storage.VOLATILE)),
    # status at the very end
    (b"TRGSTO5000!\x06", 12, MenuReply("TRGSTO", "5000", MenuStatus.ACK, Storage.VOLATILE)),
    (b"232BAD9.\x06", 9, MenuReply("232BAD", "9", MenuStatus.ACK, Storage.PERMANENT)),
    (b"TRGXXX1\x05!", 9, MenuReply("TRGXXX", "1", MenuStatus.ENQ, Storage.VOLATILE)),
    (b"TRGSTO999999\x15.", 14, MenuReply("TRGSTO", "999999", MenuStatus.NAK, Storage.PERMANENT)),
    # status then something that is not a storage character: the reply ends at the status
    (b"TRGSTO30000\x06\r\n", 12, MenuReply("TRGSTO", "30000", MenuStatus.ACK, None)),
])
def test_golden_menu_replies_in_both_layouts(wire, consumed, reply):
    assert hw.decode_menu_reply(wire) == (consumed, reply)


def test_an_echoed_prefix_and_a_code_line_before_the_reply_are_skipped():
    wire = b"\x16M\rTRGSTO5000\x06!"
    assert hw.decode_menu_reply(wire) == (3, None)
    assert hw.decode_menu_reply(wire[3:])[1].data == "5000"
    wire = b"PK1-AB\rTRGSTO5000!\x06"
    assert hw.decode_menu_reply(wire) == (7, None)


def test_a_trailing_status_waits_for_a_storage_character_unless_flushed():
    assert hw.decode_menu_reply(b"TRGSTO5000\x06") == (0, None)
    assert hw.decode_menu_reply(b"TRGSTO5000\x06", flush=True) == (
        11, MenuReply("TRGSTO", "5000", MenuStatus.ACK, None))
    assert hw.decode_menu_reply(b"TRGSTO5000") == (0, None)


def test_a_reply_to_several_settings_comes_back_one_per_setting():
    wire = b"TRGSTO30000\x06;TRGMOD0\x06."
    found, skipped = frames_in(wire, hw.decode_menu_reply, lambda rest: False)
    assert skipped == 0
    assert [f for _, f in found] == [MenuReply("TRGSTO", "30000", MenuStatus.ACK, None),
                                     MenuReply("TRGMOD", "0", MenuStatus.ACK, Storage.PERMANENT)]


def test_without_a_status_character_an_overlong_buffer_is_dropped():
    assert hw.decode_menu_reply(b"A" * hw.MAX_REPLY) == (0, None)
    assert hw.decode_menu_reply(b"A" * (hw.MAX_REPLY + 1)) == (hw.MAX_REPLY + 1, None)


def test_ok_and_status_meaning():
    assert MenuReply("TRGSTO", "1", MenuStatus.ACK).ok
    assert not MenuReply("TRGSTO", "1", MenuStatus.NAK).ok
    assert MenuStatus.ENQ.meaning == "unknown tag or subtag"


settings = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=6, max_size=6)
values = st.text("0123456789?^*ABC", max_size=8)


@given(settings, values, st.sampled_from(list(MenuStatus)), st.sampled_from([*Storage, None]),
       st.booleans(), st.booleans())
def test_every_encoded_reply_decodes_back(setting, data, status, storage, at_end, echo):
    reply = MenuReply(setting, data, status, storage)
    wire = hw.encode_menu_reply(reply, status_at_end=at_end, echo_prefix=echo)
    found, skipped = frames_in(wire, lambda b: hw.decode_menu_reply(b, flush=True), lambda rest: False)
    assert [f for _, f in found] == [reply]
    assert skipped == (3 if echo else 0)


@given(st.binary(max_size=300), st.booleans())
def test_reply_decoder_never_raises_and_always_progresses_when_flushed(buf, flush):
    rest = bytearray(buf)
    while rest:
        consumed, reply = hw.decode_menu_reply(rest, flush=flush)
        assert 0 <= consumed <= len(rest)
        if consumed == 0:
            assert not flush or not any(b in (5, 6, 0x15) for b in rest)
            break
        assert reply is None or isinstance(reply.status, MenuStatus)
        del rest[:consumed]


@given(st.binary(max_size=300))
def test_command_decoder_never_raises(buf):
    found, _ = frames_in(buf, hw.decode_command, lambda rest: rest[:1] == b"\x16")
    assert all(isinstance(f, (Trigger, MenuCommand)) for _, f in found)


@given(st.lists(st.one_of(st.booleans().map(Trigger),
                          st.builds(MenuCommand, settings, values, st.sampled_from(list(Storage)))), max_size=6),
       st.binary(max_size=20).filter(lambda b: b"\x16" not in b))
def test_host_commands_survive_noise_between_them(commands, noise):
    wire = b"".join(noise + c.encode() for c in commands)
    found, _ = frames_in(wire, hw.decode_command, lambda rest: False)
    assert [f for _, f in found] == commands
