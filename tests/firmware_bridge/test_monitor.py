from __future__ import annotations

import itertools
import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge import cu48, generic_8a as g8a, kerong_cu12 as cu12, kerong_cu16 as cu16
from firmware_bridge.monitor import (
    GARBAGE_CHUNK,
    PROTOCOLS,
    Direction,
    Monitor,
    RtuFrame,
    crc16,
    decode_capture,
    decode_rtu_reply,
    decode_rtu_request,
    encode_rtu,
)

REQ, REP, UNK = Direction.REQUEST, Direction.REPLY, Direction.UNKNOWN
BAUD = {"kerong-cu16": 19200, "kerong-cu12": 19200, "cu48": 19200, "generic-8a": 9600, "modbus-relay": 9600}


def hexb(text: str) -> bytes:
    return bytes.fromhex(text)


def timed(pieces, baudrate, pause=0.02):
    """[(bytes, ...)] -> [(time of last byte, bytes)], each piece ``pause`` s after the previous one."""
    chunks, t = [], 0.0
    for piece in pieces:
        t += pause + len(piece) * 10 / baudrate
        chunks.append((t, piece))
    return chunks


def rechunk(chunks, cuts, baudrate):
    """The same bytes at the same times, cut at other places (a chunk is stamped with its last byte)."""
    data, times = bytearray(), []
    for at, piece in chunks:
        times += [at - (len(piece) - 1 - k) * 10 / baudrate for k in range(len(piece))]
        data += piece
    points = sorted({c % len(data) for c in cuts} | {0, len(data)})
    return [(times[b - 1], bytes(data[a:b])) for a, b in zip(points, points[1:]) if b > a]


def key(frame):
    return (frame.direction, frame.board, frame.command, frame.channels, frame.checksum_ok, frame.raw)


def brief(frame):
    return (frame.direction, frame.board, frame.command)


def all_bytes(chunks):
    return b"".join(piece for _, piece in chunks)


# -- golden frames from hardware-protocols.md ----------------------------------------------------


def test_kerong_cu16_worked_frames():
    frames = decode_capture("kerong-cu16", timed([
        hexb("02 00 30 03 35"), hexb("02 00 35 FF FF 00 00 03 38"),
        hexb("02 12 31 03 48"), hexb("02 F0 32 03 27"), hexb("02 00 37 00 37 03 73"),
    ], 19200), 19200, closed_is_1=True)
    assert [brief(f) for f in frames] == [
        (REQ, 0, "status"), (REP, 0, "status_reply"), (REQ, 1, "unlock"), (REQ, None, "status_all"),
        (REQ, 0, "pulse_time"),
    ]
    reply = frames[1]
    assert reply.payload["lock_bits"] == [1] * 16 and reply.payload["item_bits"] == [0] * 16
    assert reply.payload["doors"] == ["closed"] * 16
    assert reply.latency == pytest.approx(0.02)
    assert frames[2].channels == (2,)
    assert frames[4].payload == {"pulse_ms": 550}
    assert all(f.checksum_ok for f in frames)


def test_kerong_cu12_worked_frames_and_reply_examples():
    frames = decode_capture("kerong-cu12", timed([
        hexb("02 00 0C 80 00 00 03 91"), hexb("02 00 00 80 10 02 03 99 02 00"),
        hexb("02 00 00 81 00 00 03 86"), hexb("02 00 0C 81 00 00 03 92"),
        hexb("02 00 00 8F 00 00 03 94"), hexb("02 00 00 8F 10 02 03 C8 10 12"),
    ], 19200), 19200)
    assert [brief(f) for f in frames] == [
        (REQ, 0, "status"), (REP, 0, "status"), (REQ, 0, "unlock"), (REQ, 0, "unlock"),
        (REQ, 0, "version"), (REP, 0, "version"),
    ]
    assert frames[1].payload["ask"] == "success"
    assert frames[1].payload["lock_bits"] == [0, 1] + [0] * 10  # data 02 00: lock 2
    assert frames[2].channels == (0,) and frames[3].payload == {"all_locks": True}
    assert frames[5].payload == {"ask": "success", "software": "1.0", "hardware": "1.2"}


def test_cu48_worked_frames():
    ack = cu48.encode(cu48.ack(0, 47))
    status = cu48.encode(cu48.status_reply(0, [True] * 47 + [False]))
    frames = decode_capture("cu48", timed([
        hexb("02 00 00 60 03 65"), status, hexb("02 00 00 61 03 66"), hexb("02 00 2F 61 03 95"), ack,
    ], 19200), 19200, closed_is_1=True)
    assert [brief(f) for f in frames] == [
        (REQ, 0, "status"), (REP, 0, "status_reply"), (REQ, 0, "open"), (REQ, 0, "open"), (REP, 0, "ack"),
    ]
    assert frames[1].payload["doors"] == ["closed"] * 47 + ["open"]
    assert frames[3].channels == (47,) and frames[4].channels == (47,)
    assert frames[4].payload == {"status": "success"} and frames[4].latency is not None


def test_generic_8a_worked_frames_and_captures():
    frames = decode_capture("generic-8a", timed([
        hexb("80 01 00 33 B2"), hexb("80 01 00 00 00 33 B2"),  # Open-Locker's capture
        hexb("8A 01 01 11 9B"), hexb("8A 01 01 00 8A"),
        hexb("80 01 01 33 B3"), hexb("80 01 01 11 91"),
        hexb("90 01 02 02 02 93"), hexb("9A 01 01 11 8B"),
    ], 9600), 9600)
    assert [brief(f) for f in frames] == [
        (REQ, 1, "query_all"), (REP, 1, "query_all"), (REQ, 1, "open"), (REP, 1, "open"),
        (REQ, 1, "query_one"), (REP, 1, "query_one"), (REQ, 1, "open_several"), (REQ, 1, "hold_on"),
    ]
    assert frames[1].payload["lock_bits"] == [0] * 24 and frames[1].payload["status_bytes"] == 3
    assert frames[5].payload == {"st": "11", "door": "closed"}
    assert frames[6].channels == (1, 9, 17)


def test_modbus_worked_frames():
    frames = decode_capture("modbus-relay", timed([
        hexb("01 02 00 00 00 08 79 CC"), hexb("01 02 01 F7 E0 0E"),
        hexb("01 01 00 00 00 08 3D CC"), hexb("01 01 01 08 50 4E"),
        hexb("01 05 00 03 FF 00 7C 3A"), hexb("01 05 00 03 FF 00 7C 3A"),
        hexb("01 01 00 64 00 01 BC 15"), hexb("01 81 02 C1 91"),
        hexb("01 05 02 00 00 02 4D B3"), hexb("01 05 02 00 00 02 4D B3"),
        hexb("FF 05 00 00 FF 00 99 E4"),
    ], 9600), 9600, closed_is_1=True)
    assert [brief(f) for f in frames] == [
        (REQ, 1, "read_discrete_inputs"), (REP, 1, "read_discrete_inputs"),
        (REQ, 1, "read_coils"), (REP, 1, "read_coils"),
        (REQ, 1, "write_coil"), (REP, 1, "write_coil"),
        (REQ, 1, "read_coils"), (REP, 1, "exception"),
        (REQ, 1, "flash_on"), (REP, 1, "flash_on"),
        (REQ, 255, "write_coil"),
    ]
    assert frames[0].payload == {"address": 0, "count": 8}
    assert frames[1].payload["input_bits"] == [1, 1, 1, 0, 1, 1, 1, 1]  # DI3 low
    assert frames[1].payload["doors"][3] == "open"
    assert frames[3].payload["coil_bits"] == [0, 0, 0, 1, 0, 0, 0, 0]  # coil 3 set
    assert frames[4].channels == (3,) and frames[4].payload == {"value": "on"}
    assert frames[7].payload == {"function": "read_coils", "code": 2, "reason": "illegal_data_address"}
    assert frames[8].channels == (0,) and frames[8].payload == {"pulse_ms": 200}


@pytest.mark.parametrize("wire", [
    "01 05 00 03 FF 00 7C 3A", "01 01 00 00 00 08 3D CC", "01 01 01 08 50 4E", "01 02 00 00 00 08 79 CC",
    "01 02 01 F7 E0 0E", "01 01 00 64 00 01 BC 15", "01 81 02 C1 91", "01 05 00 01 FF 00 DD FA",
    "FF 05 00 00 FF 00 99 E4", "01 05 02 00 00 02 4D B3",
])
def test_crc16_matches_every_spec_example(wire):
    raw = hexb(wire)
    assert crc16(raw[:-2]).to_bytes(2, "little") == raw[-2:]
    assert crc16(raw) == 0


def test_rtu_codec_round_trip_and_rejections():
    write = RtuFrame(1, 0x0F, struct.pack(">HHB", 0, 10, 2) + b"\x05\x02")
    raw = encode_rtu(write)
    assert decode_rtu_request(raw) == (len(raw), write)
    assert decode_rtu_request(raw[:6]) == (0, None)
    assert decode_rtu_request(raw[:-1] + bytes([raw[-1] ^ 1])) == (1, None)
    assert decode_rtu_request(hexb("01 07 00 00")) == (1, None)  # unknown function
    assert decode_rtu_reply(hexb("01 81 02 C1 91")) == (5, RtuFrame(1, 0x81, b"\x02"))
    assert decode_rtu_reply(hexb("01 03 03 00")) == (1, None)  # odd register byte count


# -- the same frames however the bytes arrive ----------------------------------------------------


def cu16_conversations():
    board = st.integers(0, 15)
    mask = st.integers(0, 0xFFFF)
    status = st.builds(lambda b, l, i: [cu16.status_request(b), cu16.StatusReply(b, l, i)], board, mask, mask)
    silent_status = st.builds(lambda b: [cu16.status_request(b)], board)
    unlock = st.builds(lambda b, c: [cu16.unlock_request(b, c)], board, st.integers(0, 15))
    unlock_answered = st.builds(lambda b, c, l: [cu16.unlock_request(b, c), cu16.StatusReply(b, l, 0)],
                                board, st.integers(0, 15), mask)
    return st.lists(st.one_of(status, silent_status, unlock, unlock_answered), min_size=1, max_size=12)


def cu12_conversations():
    board = st.integers(0, 15)
    bits = st.lists(st.booleans(), min_size=12, max_size=12)
    status = st.builds(lambda b, x: [cu12.status_request(b), cu12.status_reply(b, x)], board, bits)
    unlock = st.builds(lambda b, c, a: [r := cu12.unlock_request(b, c), cu12.reply_to(r, a)],
                       board, st.integers(0, 11), st.sampled_from(list(cu12.Ask)[1:]))
    version = st.builds(lambda b: [r := cu12.version_request(b), cu12.reply_to(r, data=b"\x10\x12")], board)
    return st.lists(st.one_of(status, unlock, version), min_size=1, max_size=12)


def cu48_conversations():
    board = st.integers(0, 255)
    bits = st.lists(st.booleans(), min_size=48, max_size=48)
    status = st.builds(lambda b, x: [cu48.status_request(b), cu48.status_reply(b, x)], board, bits)
    refused = st.builds(lambda b: [cu48.status_request(b), cu48.ack(b, 0, cu48.Status.FAILURE)], board)
    open_ = st.builds(lambda b, c: [cu48.open_request(b, c), cu48.ack(b, c)], board, st.integers(0, 47))
    return st.lists(st.one_of(status, refused, open_), min_size=1, max_size=12)


def g8a_conversations():
    board = st.integers(1, 32)
    status = st.builds(lambda b, x, n: [g8a.query_all_request(b), g8a.query_all_reply(b, x, status_bytes=n)],
                       board, st.lists(st.booleans(), max_size=24), st.sampled_from([3, 7]))
    one = st.builds(lambda b, c, s: [g8a.query_request(b, c), g8a.QueryOneReply(b, c + 1, s)],
                    board, st.integers(0, 49), st.sampled_from([g8a.ST_OPEN, g8a.ST_CLOSED]))
    open_ = st.builds(lambda b, c, s: [g8a.open_request(b, c), g8a.OpenReply(b, c + 1, s)],
                      board, st.integers(0, 49), st.sampled_from([g8a.ST_OPEN, g8a.ST_CLOSED]))
    first = st.builds(lambda b: [g8a.query_all_request(b), g8a.query_all_reply(b, [])], board)
    return st.tuples(first, st.lists(st.one_of(status, one, open_), max_size=12)).map(lambda t: [t[0], *t[1]])


def modbus_conversations():
    slave = st.integers(1, 247)

    def read(fc, s, count, bits):
        request = RtuFrame(s, fc, struct.pack(">HH", 0, count))
        data = bytes(sum(1 << i for i, b in enumerate(bits[8 * k: 8 * k + 8]) if b)
                     for k in range(math.ceil(count / 8)))
        return [request, RtuFrame(s, fc, bytes([len(data)]) + data)]

    reads = st.builds(read, st.sampled_from([1, 2]), slave, st.integers(1, 32),
                      st.lists(st.booleans(), min_size=32, max_size=32))
    flash = st.builds(lambda s, c, v: [r := RtuFrame(s, 5, struct.pack(">HH", 0x200 + c, v)), r],
                      slave, st.integers(0, 7), st.integers(1, 50))
    refused = st.builds(lambda s: [RtuFrame(s, 1, struct.pack(">HH", 100, 1)), RtuFrame(s, 0x81, b"\x02")], slave)
    silent = st.builds(lambda s: [RtuFrame(s, 2, struct.pack(">HH", 0, 8))], slave)
    first = st.builds(read, st.just(2), slave, st.just(8), st.just([False] * 32))
    return st.tuples(first, st.lists(st.one_of(reads, flash, refused, silent), max_size=12)).map(
        lambda t: [t[0], *t[1]])


def encoder(protocol):
    return {"kerong-cu16": cu16.encode, "kerong-cu12": cu12.encode, "cu48": cu48.encode,
            "generic-8a": g8a.encode, "modbus-relay": encode_rtu}[protocol]


CONVERSATIONS = {
    "kerong-cu16": cu16_conversations(),
    "kerong-cu12": cu12_conversations(),
    "cu48": cu48_conversations(),
    "generic-8a": g8a_conversations(),
    "modbus-relay": modbus_conversations(),
}


def as_wire(protocol, conversation):
    """[(expected direction, bytes)] of a conversation: each transaction is a request, then its reply."""
    encode = encoder(protocol)
    return [(REQ if i == 0 else REP, encode(frame)) for transaction in conversation
            for i, frame in enumerate(transaction)]


def test_every_lock_protocol_has_a_monitor():
    from hal.lockbank import BACKENDS

    assert set(PROTOCOLS) == set(BACKENDS)


@pytest.mark.parametrize("protocol", sorted(CONVERSATIONS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_conversation_decodes_the_same_however_it_is_chunked(protocol, data):
    baudrate = BAUD[protocol]
    conversation = data.draw(CONVERSATIONS[protocol], label="conversation")
    wire = as_wire(protocol, conversation)
    chunks = timed([raw for _, raw in wire], baudrate, pause=data.draw(st.sampled_from([0.005, 0.02, 0.1])))

    frames = decode_capture(protocol, chunks, baudrate)
    assert [(f.direction, f.raw) for f in frames] == wire
    assert all(f.checksum_ok for f in frames)

    cuts = data.draw(st.lists(st.integers(0, 10_000), max_size=30), label="cuts")
    # cut inside frames too, but at every frame boundary: the byte times stay right
    ends = list(itertools.accumulate(len(raw) for _, raw in wire))
    again = decode_capture(protocol, rechunk(chunks, cuts + ends, baudrate), baudrate)
    assert [key(f) for f in again] == [key(f) for f in frames]
    assert [f.time for f in again] == pytest.approx([f.time for f in frames], abs=1e-9)

    # chunks that run across silences (a stalled reader) make the gaps and byte times wrong, not
    # the frames; only the direction of a frame whose bytes read both ways (an 8A open reply with
    # ST 0x11, a Modbus echo) may change, because it rests on the reply window
    merged = decode_capture(protocol, rechunk(chunks, cuts, baudrate), baudrate)
    assert [key(f)[1:] for f in merged] == [key(f)[1:] for f in frames]

    # no timing at all (a file of bytes): the frames are still found by length
    untimed = decode_capture(protocol, [(0.0, piece) for _, piece in rechunk(chunks, cuts, baudrate)], baudrate)
    assert [key(f) for f in untimed] == [key(f) for f in frames]


@pytest.mark.parametrize("protocol", sorted(CONVERSATIONS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_replies_are_matched_to_their_requests(protocol, data):
    baudrate = BAUD[protocol]
    conversation = data.draw(CONVERSATIONS[protocol])
    monitor = Monitor(protocol, baudrate)
    frames = []
    for at, piece in timed([raw for _, raw in as_wire(protocol, conversation)], baudrate):
        frames += monitor.feed(piece, at)
    frames += monitor.flush()
    replies = [f for f in frames if f.direction is REP]
    assert all(f.latency == pytest.approx(0.02) for f in replies)
    requests = [f for f in frames if f.direction is REQ]
    boards = {f.board for f in requests}
    assert all(f.board in boards for f in replies)
    stats = monitor.stats
    assert (stats.requests, stats.replies, stats.unmatched_replies) == (len(conversation), len(replies), 0)
    assert sum(stats.frames_by_board.values()) == stats.frames == len(frames)


# -- garbage, resynchronisation, gaps ------------------------------------------------------------

GARBAGE = {  # the simulators' "garbage before reply", which hold false frame starts
    "kerong-cu16": hexb("FF 00 02 00 35 13"),
    "kerong-cu12": hexb("FF 02 00 0C"),
    "cu48": hexb("FF 02 00 00"),
    "generic-8a": hexb("FE 00 80 01"),
    "modbus-relay": hexb("00 FF 13"),
}


@pytest.mark.parametrize("protocol", sorted(CONVERSATIONS))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_garbage_between_frames_is_reported_and_decoding_resumes(protocol, data):
    baudrate = BAUD[protocol]
    wire = as_wire(protocol, data.draw(CONVERSATIONS[protocol]))
    where = data.draw(st.integers(1, len(wire)))
    junk = GARBAGE[protocol]
    pieces = [raw for _, raw in wire]
    pieces.insert(where, junk)
    frames = decode_capture(protocol, timed(pieces, baudrate), baudrate)

    garbage = [f for f in frames if f.is_garbage]
    assert [g.raw for g in garbage] == [junk]
    assert garbage[0].direction is UNK and garbage[0].payload == {"length": len(junk)}
    decoded = [(f.direction, f.raw) for f in frames if not f.is_garbage]
    assert [raw for _, raw in decoded] == [raw for _, raw in wire]


def test_garbage_glued_to_a_reply_is_split_off_without_gaps():
    reply = cu16.encode(cu16.StatusReply(0, 0xFFFF, 0))
    stream = cu16.encode(cu16.status_request(0)) + GARBAGE["kerong-cu16"] + reply
    frames = decode_capture("kerong-cu16", [(0.0, stream)], 19200)
    assert [(f.command, f.raw) for f in frames] == [
        ("status", stream[:5]), ("garbage", GARBAGE["kerong-cu16"]), ("status_reply", reply)]


def test_a_long_run_of_noise_is_reported_in_bounded_records():
    noise = bytes([0xFF, 0x55]) * 100
    frames = decode_capture("kerong-cu16", [(0.0, noise)], 19200)
    assert all(f.is_garbage for f in frames)
    assert [len(f.raw) for f in frames] == [GARBAGE_CHUNK] * 3 + [200 - 3 * GARBAGE_CHUNK]
    assert b"".join(f.raw for f in frames) == noise


def test_a_frame_never_spans_a_measured_silence():
    request = cu16.encode(cu16.status_request(3))
    monitor = Monitor("kerong-cu16", 19200)
    frames = monitor.feed(request[:2], 0.001)
    frames += monitor.idle(0.02)  # the line was quiet: whatever started is cut short
    frames += monitor.feed(request[2:], 0.051) + monitor.flush()
    assert [(f.command, f.raw) for f in frames] == [("garbage", request[:2]), ("garbage", request[2:])]


def test_a_gap_estimated_from_chunk_times_does_not_cut_a_valid_frame():
    # a reader that stalled: the second chunk holds the silence, so its bytes look late
    request = cu16.encode(cu16.status_request(3))
    frames = decode_capture("kerong-cu16", [(0.001, request[:2]), (0.051, request[2:])], 19200)
    assert [(f.command, f.board) for f in frames] == [("status", 3)]


def corrupt_checksum(protocol, raw):
    damaged = bytearray(raw)
    index = 7 if protocol == "kerong-cu12" else len(raw) - 1  # CU12 (after-sum layout) keeps SUM at 7
    damaged[index] ^= 0x40
    return bytes(damaged)


SAMPLE = {  # one request and its reply per protocol
    "kerong-cu16": [cu16.status_request(2), cu16.StatusReply(2, 0x00FF, 0x0001)],
    "kerong-cu12": [cu12.status_request(2), cu12.status_reply(2, [True] * 6 + [False] * 6)],
    "cu48": [cu48.status_request(2), cu48.status_reply(2, [True] * 48)],
    "generic-8a": [g8a.query_all_request(2), g8a.query_all_reply(2, [True] * 8)],
    "modbus-relay": [RtuFrame(2, 2, struct.pack(">HH", 0, 8)), RtuFrame(2, 2, b"\x01\x0F")],
}


@pytest.mark.parametrize("protocol", sorted(SAMPLE))
def test_a_bad_checksum_between_gaps_is_shown_as_that_frame(protocol):
    baudrate = BAUD[protocol]
    request, reply = (encoder(protocol)(f) for f in SAMPLE[protocol])
    bad = corrupt_checksum(protocol, reply)
    monitor = Monitor(protocol, baudrate)
    frames = []
    for at, piece in timed([request, bad, request, reply], baudrate):
        frames += monitor.feed(piece, at)
    frames += monitor.flush()
    assert [(f.direction, f.board, f.checksum_ok, f.raw) for f in frames] == [
        (REQ, 2, True, request), (REP, 2, False, bad), (REQ, 2, True, request), (REP, 2, True, reply)]
    assert frames[1].command == frames[3].command and frames[1].payload == frames[3].payload
    assert monitor.stats.checksum_errors == 1 and monitor.stats.replies_missing == 0


@pytest.mark.parametrize("protocol", sorted(SAMPLE))
def test_without_gaps_a_bad_checksum_is_garbage_and_the_next_frames_still_decode(protocol):
    request, reply = (encoder(protocol)(f) for f in SAMPLE[protocol])
    bad = corrupt_checksum(protocol, reply)
    frames = decode_capture(protocol, [(0.0, request + bad + request + reply)], BAUD[protocol])
    decoded = [(f.direction, f.raw) for f in frames if not f.is_garbage]
    assert decoded == [(REQ, request), (REQ, request), (REP, reply)]
    assert b"".join(f.raw for f in frames if f.is_garbage) == bad
    assert not any(f.checksum_ok is False and not f.is_garbage for f in frames)


def test_a_flipped_data_bit_shows_the_damaged_content_with_the_checksum_flag():
    reply = bytearray(cu16.encode(cu16.StatusReply(0, 0xFFFF, 0)))
    reply[3] ^= 0x04  # lock 3's bit
    frames = decode_capture("kerong-cu16", timed([hexb("02 00 30 03 35"), bytes(reply)], 19200), 19200)
    assert frames[1].checksum_ok is False and frames[1].command == "status_reply"
    assert frames[1].payload["lock_bits"][2] == 0


def test_a_bad_frame_is_shown_once_the_line_has_been_quiet_for_a_gap():
    bad = corrupt_checksum("kerong-cu16", cu16.encode(cu16.StatusReply(0, 1, 0)))
    monitor = Monitor("kerong-cu16", 19200)
    assert monitor.feed(bad, 1.0) == []
    assert monitor.idle(1.001) == []  # 1 ms: still possibly inside a frame
    frames = monitor.idle(1.002)  # the gap at 19200 baud is 1.82 ms
    assert [(f.command, f.checksum_ok) for f in frames] == [("status_reply", False)]


# -- the conversation: missing replies, ambiguous directions -------------------------------------


def test_missing_replies_are_counted_per_board_and_silent_unlocks_are_not():
    chunks = timed([
        hexb("02 00 30 03 35"),  # status board 0: no reply
        hexb("02 10 30 03 45"), hexb("02 10 35 FF FF 00 00 03 39"),  # status board 1: answered
        hexb("02 12 31 03 48"),  # unlock board 1: KR-CU16 unlocks are not known to be answered
        hexb("02 10 30 03 45"),  # status board 1: no reply, and the capture goes on
    ], 19200)
    monitor = Monitor("kerong-cu16", 19200)
    for at, piece in chunks:
        monitor.feed(piece, at)
    monitor.flush()
    assert monitor.stats.replies_missing == 1  # the last one may still be on its way
    assert monitor.idle(chunks[-1][0] + 0.6) == []
    stats = monitor.stats.as_dict()
    assert stats["replies_missing"] == 2
    assert stats["replies_missing_by_board"] == {"0": 1, "1": 1}
    assert stats["frames_by_board"] == {"0": 1, "1": 4}


def test_a_late_reply_answers_nothing():
    monitor = Monitor("kerong-cu16", 19200, reply_window=0.3)
    monitor.feed(hexb("02 00 30 03 35"), 1.0)
    (late,) = monitor.feed(hexb("02 00 35 FF FF 00 00 03 38"), 1.5)
    assert late.direction is REP and late.latency is None
    assert monitor.stats.unmatched_replies == 1 and monitor.stats.replies_missing == 1


def test_an_8a_open_and_its_identical_reply_are_told_apart_by_the_conversation():
    same = hexb("8A 01 01 11 9B")  # an open request, or an open reply with ST 0x11
    frames = decode_capture("generic-8a", timed([same, same, same], 9600), 9600)
    # the first could be the answer to a request sent before the capture began
    assert [f.direction for f in frames] == [UNK, REP, REQ]
    frames = decode_capture("generic-8a", timed([hexb("80 01 00 33 B2"), same, same, same], 9600), 9600)
    assert [f.direction for f in frames] == [REQ, REQ, REP, REQ]
    assert frames[2].latency is not None


def test_a_modbus_write_and_its_echo():
    write = hexb("01 05 00 03 FF 00 7C 3A")
    monitor = Monitor("modbus-relay", 9600)
    frames = []
    for at, piece in timed([hexb("01 02 00 00 00 08 79 CC"), write, write], 9600):
        frames += monitor.feed(piece, at)
    frames += monitor.flush(now=10.0)
    assert [f.direction for f in frames] == [REQ, REQ, REP]
    assert frames[2].latency == pytest.approx(0.02)
    # the read got no reply; the write got its echo
    assert (monitor.stats.replies_missing, monitor.stats.unmatched_replies) == (1, 0)


def test_status_byte_count_and_byte_order_options_for_8a():
    reply = g8a.encode(g8a.query_all_reply(1, [False, True], status_bytes=3, first_byte_first=False))
    frames = decode_capture("generic-8a", timed([hexb("80 01 00 33 B2"), reply], 9600), 9600,
                            status_bytes=3, first_byte_first=False, closed_is_1=False)
    assert frames[1].payload["lock_bits"][:2] == [0, 1]
    assert frames[1].payload["doors"][:2] == ["closed", "open"]


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="no bus monitor"):
        Monitor("wkly", 9600)
    with pytest.raises(ValueError, match="status_bytes"):
        Monitor("generic-8a", 9600, status_bytes=5)


def test_as_dict_is_plain_data():
    (frame,) = decode_capture("kerong-cu16", [(0.25, hexb("02 00 31 03 36"))], 19200)  # 4 chars: 2.083 ms
    assert frame.as_dict(origin=0.2) == {
        "t_ms": 47.917, "direction": "request", "board": 0,
        "command": "unlock", "channels": [0], "payload": {}, "checksum_ok": True, "latency_ms": None,
        "raw": "02 00 31 03 36",
    }


# -- fuzz -------------------------------------------------------------------------------------------

OPTIONS = st.fixed_dictionaries({}, optional={
    "gap": st.sampled_from([0.0, 0.002, math.inf]),
    "closed_is_1": st.booleans(),
    "first_byte_first": st.booleans(),
})


@pytest.mark.parametrize("protocol", PROTOCOLS)
@settings(max_examples=150, deadline=None)
@given(chunks=st.lists(st.tuples(st.floats(0, 10, allow_nan=False), st.binary(max_size=40)), max_size=20),
       options=OPTIONS, idle=st.booleans())
def test_random_bytes_never_raise_and_every_byte_is_reported_once(protocol, chunks, options, idle):
    monitor = Monitor(protocol, BAUD[protocol], **options)
    frames = []
    for at, piece in chunks:
        frames += monitor.feed(piece, at)
        if idle:
            frames += monitor.idle(at + 0.01)
    frames += monitor.flush(now=20.0)
    assert b"".join(f.raw for f in frames) == all_bytes(chunks)
    for frame in frames:
        frame.as_dict()
        frame.summary()
    stats = monitor.stats
    assert stats.garbage_bytes == sum(len(f.raw) for f in frames if f.is_garbage)
    assert stats.frames == sum(1 for f in frames if not f.is_garbage)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_real_frames_mixed_with_random_bytes_never_raise(protocol, data):
    wire = [raw for _, raw in as_wire(protocol, data.draw(CONVERSATIONS[protocol]))]
    noise = data.draw(st.lists(st.binary(max_size=6), min_size=len(wire), max_size=len(wire)))
    pieces = [p for pair in zip(noise, wire) for p in pair if p]
    chunks = timed(pieces, BAUD[protocol], pause=data.draw(st.sampled_from([0.0, 0.01])))
    frames = decode_capture(protocol, chunks, BAUD[protocol])
    assert b"".join(f.raw for f in frames) == all_bytes(chunks)
