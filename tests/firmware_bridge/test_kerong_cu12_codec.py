import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from firmware_bridge import kerong_cu12 as cu12
from firmware_bridge.kerong_cu12 import Ask, Command, DataPosition, Reply, Request
from tests.firmware_bridge.framing import frames_in

BEFORE, AFTER = DataPosition.BEFORE_SUM, DataPosition.AFTER_SUM
MAX_FRAME = cu12.HEADER_LEN + 1 + cu12.MAX_DATA_LEN


def decoder(direction, position):
    def decode(buf):
        return cu12.decode(buf, direction, data_position=position)

    return decode


def scan(buf, direction="reply", position=BEFORE):
    return frames_in(buf, decoder(direction, position), lambda rest: rest[0] == cu12.STX and len(rest) < MAX_FRAME)


# -- golden bytes: the worked frames of hardware-protocols.md §1.2 ------------------------------

GOLDEN_REQUESTS = [
    ("status board 0", cu12.status_request(0), "02 00 0C 80 00 00 03 91"),
    ("unlock board 0 lock 0", cu12.unlock_request(0, 0), "02 00 00 81 00 00 03 86"),
    ("unlock all, board 0", cu12.unlock_all_request(0), "02 00 0C 81 00 00 03 92"),
]


@pytest.mark.parametrize("position", list(DataPosition))
@pytest.mark.parametrize("name, frame, wire", GOLDEN_REQUESTS, ids=[g[0] for g in GOLDEN_REQUESTS])
def test_request_golden_bytes_in_either_data_position(name, frame, wire, position):
    # No DATA: both layouts are the same bytes.
    raw = bytes.fromhex(wire)
    assert cu12.encode(frame, data_position=position) == raw
    assert cu12.decode_request(raw, data_position=position) == (len(raw), frame)
    assert cu12.checksum(raw[:-1]) == raw[-1]


def test_unlock_acknowledgement_from_the_source_project():
    # CU12.md in the migration project: "Send: 02 00 02 81 00 00 03 88 / Expected: 02 00 02 81 10 00 03 98"
    assert cu12.encode(cu12.unlock_request(0, 2)) == bytes.fromhex("02 00 02 81 00 00 03 88")
    ack = bytes.fromhex("02 00 02 81 10 00 03 98")
    assert cu12.decode_reply(ack) == (8, Reply(0, 2, Command.UNLOCK, Ask.SUCCESS))
    assert cu12.reply_to(cu12.unlock_request(0, 2)) == cu12.decode_reply(ack)[1]


@pytest.mark.parametrize(
    "wire, reply",
    [
        ("02 00 00 80 10 02 03 99 02 00", Reply(0, 0, Command.STATUS, Ask.SUCCESS, b"\x02\x00")),
        ("02 00 00 8F 10 02 03 C8 10 12", Reply(0, 0, Command.VERSION, Ask.SUCCESS, b"\x10\x12")),
    ],
    ids=["status", "version"],
)
def test_replies_with_data_from_the_source_parser_are_after_sum_layout(wire, reply):
    # The migration project's DS12 parser documents these two replies: DATA after SUM, SUM over
    # header and DATA. In the default (builder) layout the same bytes are not a frame.
    raw = bytes.fromhex(wire)
    assert cu12.decode_reply(raw, data_position=AFTER) == (10, reply)
    assert cu12.encode(reply, data_position=AFTER) == raw
    assert cu12.decode_reply(raw, data_position=BEFORE)[1] is None
    before = cu12.encode(reply, data_position=BEFORE)
    assert before[:7] == raw[:7] and before[7:9] == raw[8:10] and before[9] == raw[7]


def test_status_bitmap_assumption_lock1_is_bit0_of_the_first_data_byte():
    # DATA 01 08: lock 1 (bit 0 of byte 1) and lock 12 (bit 3 of byte 2)
    reply = Reply(5, cu12.ALL_LOCKS, Command.STATUS, Ask.SUCCESS, b"\x01\x08")
    assert [i for i, bit in enumerate(reply.status_bits()) if bit] == [0, 11]
    assert [i for i, bit in enumerate(reply.status_bits(first_byte_first=False)) if bit] == [3, 8]
    assert cu12.status_reply(5, reply.status_bits()) == reply
    assert len(reply.status_bits()) == 12


def test_a_board_saying_no_is_a_decoded_value():
    for ask in (Ask.FAILURE, Ask.TIMEOUT, Ask.UNKNOWN_COMMAND, Ask.CHECKSUM_ERROR):
        raw = cu12.encode(cu12.reply_to(cu12.status_request(3), ask))
        consumed, reply = cu12.decode_reply(raw)
        assert consumed == 8 and reply.ask is ask
        assert not reply.ok and reply.status_bits() is None


def test_constructors_check_ranges():
    with pytest.raises(ValueError):
        cu12.unlock_request(0, 12)  # 0x0C is "all", not a lock
    with pytest.raises(ValueError):
        cu12.status_request(0x11)
    with pytest.raises(ValueError):
        Request(0, 0, Command.STATUS, b"\x00")  # status takes no data
    with pytest.raises(ValueError):
        Request(0, 0, Command.PULSE_TIME, b"\x00")  # 0 or 2 bytes
    with pytest.raises(ValueError):
        Reply(0, 0, Command.STATUS, Ask.REQUEST)  # a request ASK in a reply
    with pytest.raises(ValueError):
        cu12.set_baud_request(0, 4800)
    assert cu12.pulse_time_request(0, 550).data == b"\x00\x37"  # the spec's default, 0x0037
    assert cu12.pulse_time_request(0).data == b""  # query
    assert cu12.set_baud_request(0, 115200).data == b"\x03"
    assert cu12.encode(cu12.status_request(cu12.BROADCAST))[1] == 0x10


def test_each_direction_only_decodes_its_own_frames():
    request = cu12.encode(cu12.status_request(0))
    reply = cu12.encode(cu12.reply_to(cu12.status_request(0), data=b"\x00\x00"))
    assert scan(request, "reply") == ([], len(request))  # ASK 0x00: not a reply
    assert scan(reply, "request") == ([], len(reply))  # ASK 0x10: not a request
    with pytest.raises(ValueError):
        cu12.decode(reply, "sideways")


@pytest.mark.parametrize(
    "buf, expected",
    [
        (b"", (0, None)),
        (b"\x02", (0, None)),
        (b"\x02\x00\x0c\x80\x10\x02\x03\x00", (0, None)),  # needs 2 more bytes
        (b"\xff\xfe\x02\x00", (2, None)),  # garbage up to the STX
        (b"\x02\x11", (2, None)),  # ADDR above broadcast: rejected at once
        (b"\x02\x00\x0d", (3, None)),  # LOCKNUM above 0x0C
        (b"\x02\x00\x00\x30\x02", (4, None)),  # a KR-CU16 command byte; resync on the inner STX
        (b"\x02\x00\x00\x80\x00", (5, None)),  # ASK of a request in a reply
        (b"\x02\x00\x00\x80\x10\x11", (6, None)),  # DATALEN beyond MAX_DATA_LEN
        (b"\x02\x00\x00\x80\x10\x00\x04\x02", (7, None)),  # no ETX
        (b"\x02\x00\x00\x81\x10\x00\x03\x99", (8, None)),  # bad SUM
    ],
)
def test_reply_decoder_resync_rules(buf, expected):
    assert cu12.decode_reply(buf) == expected


def test_false_header_before_a_reply_is_skipped_and_the_reply_found():
    reply = cu12.status_reply(2, [True] * 12)
    stream = b"\xff\x00\x02\x00\x0c\x80\x10" + cu12.encode(reply, data_position=BEFORE) + b"\x02\x00"
    found, skipped = scan(stream)
    assert found == [(7, reply)]
    assert skipped == 7


# -- properties ----------------------------------------------------------------------------------

boards = st.integers(0, cu12.BROADCAST)
locks = st.integers(0, cu12.ALL_LOCKS)
positions = st.sampled_from(list(DataPosition))


@st.composite
def requests(draw):
    command = draw(st.sampled_from(sorted(cu12.REQUEST_DATA_LENS)))
    size = draw(st.sampled_from(sorted(cu12.REQUEST_DATA_LENS[command])))
    return Request(draw(boards), draw(locks), Command(command), draw(st.binary(min_size=size, max_size=size)))


replies = st.builds(
    Reply,
    board=boards,
    lock=locks,
    command=st.sampled_from(list(Command)),
    ask=st.sampled_from(sorted(cu12.REPLY_ASKS)),
    data=st.binary(max_size=cu12.MAX_DATA_LEN),
)
no_stx = st.binary(max_size=40).map(lambda b: b.replace(b"\x02", b""))


@given(requests(), positions)
def test_request_round_trip(frame, position):
    raw = cu12.encode(frame, data_position=position)
    assert len(raw) == 8 + len(frame.data)
    assert cu12.decode_request(raw, data_position=position) == (len(raw), frame)
    assert cu12.decode_request(raw + b"\x02\x00", data_position=position) == (len(raw), frame)


@given(replies, positions)
def test_reply_round_trip(frame, position):
    raw = cu12.encode(frame, data_position=position)
    assert cu12.decode_reply(raw, data_position=position) == (len(raw), frame)


@given(st.binary(max_size=200), positions)
@example(b"\x02" * 12, BEFORE)
@example(b"\x02\x00\x0c\x80\x10\x10\x03", AFTER)
def test_garbage_never_raises_and_never_stalls(buf, position):
    for direction in ("reply", "request"):
        scan(buf, direction, position)
        scan(bytearray(buf), direction, position)


@given(no_stx, st.lists(replies, min_size=1, max_size=4), no_stx, positions)
def test_replies_between_stx_free_garbage_are_all_found(prefix, frames, suffix, position):
    stream = prefix + b"".join(cu12.encode(f, data_position=position) for f in frames) + suffix
    found, skipped = scan(stream, "reply", position)
    assert [f for _, f in found] == frames
    assert skipped == len(prefix) + len(suffix)


@given(no_stx, requests(), no_stx)
def test_request_between_stx_free_garbage_is_found(prefix, frame, suffix):
    found, _ = scan(prefix + cu12.encode(frame, data_position=BEFORE) + suffix, "request")
    assert found == [(len(prefix), frame)]


@given(st.binary(max_size=40), replies, st.binary(max_size=40))
def test_reply_in_arbitrary_garbage_is_found_unless_a_false_frame_covers_its_start(prefix, frame, suffix):
    raw = cu12.encode(frame, data_position=BEFORE)
    found, _ = scan(prefix + raw + suffix)
    start = len(prefix)
    covered = any(offset < start < offset + len(cu12.encode(f, data_position=BEFORE)) for offset, f in found)
    assert (start, frame) in found or covered


@given(replies, st.integers(0, 7 + cu12.MAX_DATA_LEN), st.integers(0, 7), positions)
def test_single_bit_flip_outside_datalen_never_decodes_at_the_frame_start(frame, index, bit, position):
    raw = bytearray(cu12.encode(frame, data_position=position))
    assume(index < len(raw) and index != 5)
    raw[index] ^= 1 << bit
    found, _ = scan(bytes(raw), "reply", position)
    assert all(offset > 0 for offset, _ in found)
    assert all(raw[offset] == cu12.STX for offset, _ in found)  # later finds start on a data byte 0x02


def test_known_limit_a_flipped_datalen_bit_can_reframe_a_reply():
    # The sum covers the bytes DATALEN designates. Status data A1 00: clear bit 1 of DATALEN
    # (2 -> 0) and the first data byte reads as a matching SUM: a "success" without a bitmap.
    # The driver therefore only accepts status successes that carry 2 data bytes.
    raw = bytearray(cu12.encode(Reply(0, 12, Command.STATUS, Ask.SUCCESS, b"\xa1\x00"), data_position=BEFORE))
    assert raw.hex(" ") == "02 00 0c 80 10 02 03 a1 00 44"
    raw[5] ^= 0x02
    assert cu12.decode_reply(raw, data_position=BEFORE) == (8, Reply(0, 12, Command.STATUS, Ask.SUCCESS))
