import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge import scanner_ssi as ssi
from firmware_bridge.scanner_ssi import DecodeData, NakCause, Opcode, Packet, Source, Status
from tests.firmware_bridge.framing import frames_in


@pytest.mark.parametrize("name, wire", [  # every row of the spec's table (§3.2)
    ("START_DECODE", "04 E4 04 00 FF 14"),
    ("STOP_DECODE", "04 E5 04 00 FF 13"),
    ("CMD_ACK", "04 D0 04 00 FF 28"),
    ("SCAN_ENABLE", "04 E9 04 00 FF 0F"),
    ("SCAN_DISABLE", "04 EA 04 00 FF 0E"),
    ("REQUEST_REVISION", "04 A3 04 00 FF 55"),
])
def test_golden_host_commands(name, wire):
    raw = bytes.fromhex(wire)
    assert getattr(ssi, name) == raw
    assert ssi.decode(raw) == (6, Packet(Opcode[name], Source.HOST, 0, b""))


def test_param_send_starts_with_the_spec_prefix():
    assert ssi.param_send({0xEE: 1}).startswith(bytes.fromhex("07 C6 04 00"))
    assert ssi.param_send({0xEE: 1}, permanent=True)[:4] == bytes.fromhex("07 C6 04 08")


def test_golden_param_send_from_a_captured_exchange():
    # a public SE3300 integration's log: beep FF, then EE=01 9F=01 EC=01 8A=07 and F0 00 00 (an
    # extended parameter this encoder does not build), permanent; the checksum is the engine's
    captured = bytes.fromhex("10 c6 04 08 ff ee 01 9f 01 ec 01 8a 07 f0 00 00 fa 22")
    assert ssi.decode(captured)[0] == len(captured)
    built = ssi.param_send([(0xEE, 1), (0x9F, 1), (0xEC, 1), (0x8A, 7)], permanent=True)
    assert built[:13] == bytes([0x0D]) + captured[1:13]
    assert ssi.decode(built) == (15, Packet(Opcode.PARAM_SEND, Source.HOST, Status.PERMANENT, captured[4:13]))
    with pytest.raises(ValueError):
        ssi.param_send({0xF0: 0})


def test_golden_replies_from_the_engine():
    ack = bytes.fromhex("04 D0 00 00 FF 2C")  # the engine's ACK in the same capture
    assert ssi.ack(Source.DECODER) == ack
    assert ssi.decode(ack) == (6, Packet(Opcode.CMD_ACK, Source.DECODER))
    nak = ssi.nak(NakCause.DENIED, Source.DECODER)
    assert nak == bytes.fromhex("05 D1 00 00 06 FF 24")
    assert ssi.nak_cause(ssi.decode(nak)[1]) is NakCause.DENIED
    assert ssi.nak_cause(Packet(Opcode.CMD_NAK, data=b"\x42")) == 0x42
    assert ssi.nak_cause(Packet(Opcode.CMD_ACK)) is None


def test_golden_decode_data_from_a_captured_exchange():
    wire = bytes.fromhex("07 F3 00 00 03 55 53 FE 5B")  # Code 128 "US"
    consumed, packet = ssi.decode(wire)
    assert consumed == 9
    decoded = ssi.decode_data(packet)
    assert decoded == DecodeData(0x03, b"US")
    assert decoded.symbology == "]C0"
    assert ssi.decode_data_packets(b"US", 0x03) == [wire]


def test_checksum_is_the_twos_complement_of_the_sum():
    body = bytes.fromhex("07 F3 00 00 03 55 53")
    assert (sum(body) + ssi.checksum(body)) & 0xFFFF == 0


def test_a_long_code_is_split_with_the_continuation_bit():
    data = bytes(range(256)) * 2
    packets = ssi.decode_data_packets(data, 0x1C)
    assert len(packets) == 3
    decoded = [ssi.decode_data(ssi.decode(p)[1]) for p in packets]
    assert [d.continued for d in decoded] == [True, True, False]
    assert {d.code_type for d in decoded} == {0x1C}
    assert b"".join(d.data for d in decoded) == data
    assert all(len(p) <= 0xFF + 2 for p in packets)
    resent = ssi.decode_data(ssi.decode(ssi.decode_data_packets(b"X", 0x1C, retransmit=True)[0])[1])
    assert resent.retransmitted and not resent.continued


def test_decode_data_of_other_packets_is_none():
    assert ssi.decode_data(Packet(Opcode.CMD_ACK)) is None
    assert ssi.decode_data(Packet(Opcode.DECODE_DATA, Source.DECODER)) is None  # no type byte


@pytest.mark.parametrize("wire, consumed", [
    ("00 04 E4 04 00 FF 14", 1),  # the wake byte before a command
    ("04 77 04 00 FF 81", 1),  # unknown opcode
    ("04 E4 05 00 FF 13", 1),  # unknown source
    ("04 E4 04 00 FF 15", 1),  # bad checksum
    ("04 E4 04 00 FF", 0),  # incomplete
    ("07 F3", 0),
])
def test_resynchronisation(wire, consumed):
    assert ssi.decode(bytes.fromhex(wire)) == (consumed, None)


def test_garbage_and_a_corrupt_packet_before_a_good_one():
    corrupt = bytearray(ssi.START_DECODE)
    corrupt[-1] ^= 1
    wire = b"\x00\x00\xffzz" + bytes(corrupt) + bytes.fromhex("07 F3 00 00 03 55 53 FE 5B") + ssi.CMD_ACK
    found, skipped = frames_in(wire, ssi.decode, lambda rest: False)
    assert [f.opcode for _, f in found] == [Opcode.DECODE_DATA, Opcode.CMD_ACK]
    assert skipped == 5 + len(corrupt)


def test_encode_refuses_too_much_data():
    with pytest.raises(ValueError):
        ssi.encode(Packet(Opcode.DECODE_DATA, data=bytes(252)))


def test_repr_hides_the_scanned_bytes():
    packet = ssi.decode(bytes.fromhex("07 F3 00 00 03 55 53 FE 5B"))[1]
    assert "US" not in repr(packet) and "DECODE_DATA" in repr(packet)
    assert "US" not in repr(ssi.decode_data(packet))


packets = st.builds(Packet, st.sampled_from(list(Opcode)), st.sampled_from(list(Source)),
                    st.integers(0, 255), st.binary(max_size=40))


def drain(buf: bytes) -> list[Packet]:
    """Decode like a reader does: when the decoder waits for bytes that never come (the line went
    quiet), drop the first byte and go on."""
    rest, found = bytearray(buf), []
    while rest:
        consumed, packet = ssi.decode(rest)
        assert 0 <= consumed <= len(rest)
        if packet is not None:
            found.append(packet)
        del rest[:max(consumed, 1)]
    return found


@given(st.lists(packets, max_size=6), st.binary(max_size=8))
def test_packets_survive_noise(sent, noise):
    wire = b"".join(noise + ssi.encode(p) for p in sent)
    found = iter(drain(wire))
    # every sent packet is found, in order (noise could only add one by forging a checksum)
    assert all(any(f == p for f in found) for p in sent)


@given(st.binary(max_size=400))
def test_decoder_never_raises(buf):
    found, _ = frames_in(buf, ssi.decode, lambda rest: len(rest) < rest[0] + 2)
    for _, packet in found:
        assert isinstance(packet, Packet)
        assert packet.opcode in set(Opcode) and packet.source in set(Source)
        ssi.decode_data(packet)
        ssi.nak_cause(packet)


@given(st.binary(max_size=600), st.integers(0, 255))
def test_decode_data_packets_roundtrip(data, code_type):
    decoded = [ssi.decode_data(ssi.decode(p)[1]) for p in ssi.decode_data_packets(data, code_type)]
    assert b"".join(d.data for d in decoded) == data
    assert not decoded[-1].continued and all(d.continued for d in decoded[:-1])
    assert all(d.code_type == code_type for d in decoded)
    assert Status.CONTINUATION == 0x02
