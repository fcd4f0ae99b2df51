import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from firmware_bridge import generic_8a as g8a
from firmware_bridge.generic_8a import (
    HoldRequest,
    OpenReply,
    OpenRequest,
    OpenSeveralRequest,
    QueryAllReply,
    QueryOneReply,
    QueryRequest,
)
from tests.firmware_bridge.framing import frames_in

LONGEST = 11


def waits_on_a_head(heads):
    return lambda rest: rest[0] in heads and len(rest) < LONGEST


def scan(buf, decoder):
    heads = g8a.REQUEST_HEADS if decoder is g8a.decode_request else g8a.REPLY_HEADS
    return frames_in(buf, decoder, waits_on_a_head(heads))


def reply_decoder(status_bytes):
    return lambda buf: g8a.decode_reply(buf, status_bytes=status_bytes)


ALL_DECODERS = [g8a.decode_request, reply_decoder(3), reply_decoder(7), g8a.decode_query_one_reply]


# -- golden bytes: every example of the §1.4 table and its replies ------------------------------

GOLDEN_REQUESTS = [
    ("open board 1 lock 1", g8a.open_request(1, 0), "8A 01 01 11 9B"),
    ("open with a 5 s pulse", g8a.open_request(1, 0, pulse_s=5), "8A 01 01 11 05 9E"),
    ("open all, board 1", g8a.open_all_request(1), "8A 01 00 11 9A"),
    ("query one", g8a.query_request(1, 0), "80 01 01 33 B3"),
    ("query all", g8a.query_all_request(1), "80 01 00 33 B2"),
    ("open locks 2, 10, 18", g8a.open_several_request(1, [1, 9, 17]), "90 01 02 02 02 93"),
    ("keep energised on", g8a.hold_request(1, 0, on=True), "9A 01 01 11 8B"),
    ("keep energised off", g8a.hold_request(1, 0, on=False), "9B 01 01 11 8A"),
]


@pytest.mark.parametrize("name, frame, wire", GOLDEN_REQUESTS, ids=[g[0] for g in GOLDEN_REQUESTS])
def test_request_golden_bytes(name, frame, wire):
    raw = bytes.fromhex(wire)
    assert g8a.encode(frame) == raw
    assert g8a.decode_request(raw) == (len(raw), frame)
    assert g8a.bcc(raw[:-1]) == raw[-1]


GOLDEN_REPLIES = [
    ("open reply", OpenReply(1, 1, 0x00), "8A 01 01 00 8A", reply_decoder(3)),
    ("Open-Locker 8-channel query all", QueryAllReply(1, b"\x00\x00\x00"), "80 01 00 00 00 33 B2", reply_decoder(3)),
    ("Android: lock 2 open", QueryAllReply(1, b"\x00\x00\x02"), "80 01 00 00 02 33 B0", reply_decoder(3)),
    ("Android: 'lock 5' open", QueryAllReply(1, b"\x00\x00\x20"), "80 01 00 00 20 33 92", reply_decoder(3)),
    ("query one: closed", QueryOneReply(1, 1, g8a.ST_CLOSED), "80 01 01 11 91", g8a.decode_query_one_reply),
    ("query one: open", QueryOneReply(1, 1, g8a.ST_OPEN), "80 01 01 00 80", g8a.decode_query_one_reply),
    ("50 channels, all 0", QueryAllReply(1, bytes(7)), "80 01 00 00 00 00 00 00 00 33 B2", reply_decoder(7)),
]


@pytest.mark.parametrize("name, frame, wire, decoder", GOLDEN_REPLIES, ids=[g[0] for g in GOLDEN_REPLIES])
def test_reply_golden_bytes(name, frame, wire, decoder):
    raw = bytes.fromhex(wire)
    assert g8a.encode(frame) == raw
    assert decoder(raw) == (len(raw), frame)


def test_open_locker_capture_round_trip():
    # TX 80 01 00 33 B2 / RX 80 01 00 00 00 33 B2 on a verified 8-channel board
    assert g8a.encode(g8a.query_all_request(1)) == bytes.fromhex("80 01 00 33 B2")
    reply = g8a.decode_reply(bytes.fromhex("80 01 00 00 00 33 B2"))[1]
    assert reply.lock_bits()[:8] == (False,) * 8


def open_channels(data, *, first_byte_first, closed_is_1):
    bits = QueryAllReply(1, data).lock_bits(first_byte_first=first_byte_first)
    return [ch for ch, bit in enumerate(bits[:24]) if bit == (not closed_is_1)]


@pytest.mark.parametrize("first_byte_first", [True, False])
@pytest.mark.parametrize("closed_is_1", [True, False])
def test_android_capture_lock_2_open_under_each_setting(first_byte_first, closed_is_1):
    # Only last-byte-first with bit 1 = open reads the capture as its caption says.
    opened = open_channels(b"\x00\x00\x02", first_byte_first=first_byte_first, closed_is_1=closed_is_1)
    expected = {
        (False, False): [1],  # lock 2: the Android setting
        (True, False): [17],  # lock 18
        (False, True): [c for c in range(24) if c != 1],  # everything but lock 2
        (True, True): [c for c in range(24) if c != 17],
    }[(first_byte_first, closed_is_1)]
    assert opened == expected


def test_android_lock_5_caption_is_off_by_one_under_every_setting():
    # 0x20 is bit 5: with lock 1 = bit 0 (which the "lock 2 -> 0x02" capture fixes) that is
    # lock 6. No byte order or polarity makes it lock 5 (channel 4); the caption is taken as a slip.
    readings = [
        open_channels(b"\x00\x00\x20", first_byte_first=f, closed_is_1=c) for f in (True, False) for c in (True, False)
    ]
    assert [4] not in readings
    assert open_channels(b"\x00\x00\x20", first_byte_first=False, closed_is_1=False) == [5]


def test_byte_order_of_a_built_reply():
    bits = [ch == 1 for ch in range(24)]
    assert g8a.query_all_reply(1, bits, first_byte_first=False).data == b"\x00\x00\x02"
    assert g8a.query_all_reply(1, bits, first_byte_first=True).data == b"\x02\x00\x00"
    assert len(g8a.query_all_reply(1, [True] * 50, status_bytes=7).data) == 7


def test_why_the_host_decoder_must_know_which_query_it_sent():
    # A query-all reply whose S3 = 80^01^S1^S2 begins with a valid 5-byte query-one reply.
    raw = g8a.encode(QueryAllReply(1, b"\x00\x00\x81"))
    assert raw.hex(" ") == "80 01 00 00 81 33 33"
    assert g8a.decode_reply(raw) == (7, QueryAllReply(1, b"\x00\x00\x81"))
    assert g8a.decode_query_one_reply(raw) == (5, QueryOneReply(1, 0, 0x00))


def test_a_50_channel_reply_is_not_taken_for_a_24_channel_one():
    raw = g8a.encode(g8a.query_all_reply(2, [True] * 50, status_bytes=7))
    assert g8a.decode_reply(raw, status_bytes=7) == (11, QueryAllReply(2, raw[2:9]))
    assert scan(raw, reply_decoder(3))[0] == []


def test_open_request_lengths_are_unambiguous():
    # A 5-byte open followed by 00 is not a 6-byte open with pulse 0x9B: the 5-byte BCC matched.
    assert g8a.decode_request(bytes.fromhex("8A 01 01 11 9B 00")) == (5, OpenRequest(1, 1))
    assert g8a.decode_request(bytes.fromhex("8A 01 01 11 05")) == (0, None)  # pulse byte: wait for BCC
    assert g8a.decode_request(bytes.fromhex("8A 01 01 11 0A 91")) == (6, None)  # pulse 10 s does not exist


def test_constructors_check_ranges():
    with pytest.raises(ValueError):
        g8a.open_request(1, 50)
    with pytest.raises(ValueError):
        g8a.open_request(1, 0, pulse_s=10)
    with pytest.raises(ValueError):
        g8a.query_all_request(0x40)
    with pytest.raises(ValueError):
        g8a.open_several_request(1, [24])
    with pytest.raises(ValueError):
        QueryAllReply(1, b"\x00" * 4)
    with pytest.raises(ValueError):
        g8a.decode_reply(b"", status_bytes=4)
    with pytest.raises(ValueError):
        g8a.status_bytes_for(51)
    assert [g8a.status_bytes_for(n) for n in (8, 12, 24, 25, 50)] == [3, 3, 3, 7, 7]


def test_each_direction_only_decodes_its_own_frames():
    assert scan(g8a.encode(g8a.query_all_request(1)), reply_decoder(3))[0] == []
    assert scan(g8a.encode(QueryAllReply(1, b"\x01\x02\x03")), g8a.decode_request)[0] == []
    assert g8a.decode(g8a.encode(g8a.open_request(3, 2)), "request")[1] == OpenRequest(3, 3)
    assert g8a.decode(bytes.fromhex("80 01 01 11 91"), "query_one_reply")[1] == QueryOneReply(1, 1, 0x11)
    with pytest.raises(ValueError):
        g8a.decode(b"", "sideways")


@pytest.mark.parametrize(
    "buf, expected",
    [
        (b"", (0, None)),
        (b"\x80\x01\x00\x00", (0, None)),
        (b"\x00\xff\x80", (2, None)),  # garbage up to a head byte
        (b"\x90\x01\x02\x02\x02\x93", (6, None)),  # no reply to open-several is known
        (b"\x80\x41", (2, None)),  # board above 0x3F
        (b"\x80\x01\x00\x00\x00\x11\xb2", (7, None)),  # FUNC must be 0x33; no other head inside
        (b"\x80\x01\x8a\x01\x01\x00\x8a", (2, None)),  # a false start: resync on the inner head
        (b"\x8a\x01\x01\x00\x8b", (5, None)),  # bad BCC
    ],
)
def test_reply_decoder_resync_rules(buf, expected):
    assert g8a.decode_reply(buf) == expected


def test_garbage_before_a_reply_is_skipped_and_the_reply_found():
    reply = QueryAllReply(1, b"\x00\x00\x02")
    found, skipped = scan(b"\xfe\x00\x80\x01" + g8a.encode(reply), reply_decoder(3))
    assert found == [(4, reply)] and skipped == 4


# -- properties ----------------------------------------------------------------------------------

addresses = st.integers(0, g8a.MAX_ADDRESS)
requests = st.one_of(
    st.builds(OpenRequest, board=addresses, lock=addresses, pulse_s=st.none() | st.integers(1, 9)),
    st.builds(QueryRequest, board=addresses, lock=addresses),
    st.builds(OpenSeveralRequest, board=addresses, bitmap=st.binary(min_size=3, max_size=3)),
    st.builds(HoldRequest, board=addresses, lock=addresses, on=st.booleans()),
)
status_bytes = st.sampled_from(g8a.STATUS_BYTE_COUNTS)


@st.composite
def replies(draw):
    """(reply, decoder that expects it)."""
    kind = draw(st.sampled_from(["open", "one", "all"]))
    if kind == "open":
        return OpenReply(draw(addresses), draw(addresses), draw(st.integers(0, 255))), reply_decoder(draw(status_bytes))
    if kind == "one":
        return QueryOneReply(draw(addresses), draw(addresses), draw(st.integers(0, 255))), g8a.decode_query_one_reply
    n = draw(status_bytes)
    return QueryAllReply(draw(addresses), draw(st.binary(min_size=n, max_size=n))), reply_decoder(n)


no_heads = st.binary(max_size=40).map(lambda b: bytes(x for x in b if x not in g8a.REQUEST_HEADS))


@given(requests)
def test_request_round_trip(frame):
    raw = g8a.encode(frame)
    assert g8a.decode_request(raw + b"\x80\x01") == (len(raw), frame)


@given(replies())
def test_reply_round_trip(case):
    frame, decoder = case
    raw = g8a.encode(frame)
    assert decoder(raw) == (len(raw), frame)


@given(st.binary(max_size=200))
@example(b"\x80" * 12)
@example(b"\x8a\x01\x01\x11\x05")
def test_garbage_never_raises_and_never_stalls(buf):
    for decoder in ALL_DECODERS:
        scan(buf, decoder)
        scan(bytearray(buf), decoder)


@given(no_heads, st.lists(replies(), min_size=1, max_size=4), no_heads)
def test_replies_between_head_free_garbage_are_all_found(prefix, cases, suffix):
    for frame, decoder in cases:
        found, skipped = scan(prefix + g8a.encode(frame) + suffix, decoder)
        assert found == [(len(prefix), frame)]
        assert skipped == len(prefix) + len(suffix)


@given(no_heads, requests, no_heads)
def test_request_between_head_free_garbage_is_found(prefix, frame, suffix):
    found, _ = scan(prefix + g8a.encode(frame) + suffix, g8a.decode_request)
    assert found == [(len(prefix), frame)]


@given(st.binary(max_size=40), replies(), st.binary(max_size=40))
def test_reply_in_arbitrary_garbage_is_found_unless_a_false_frame_covers_its_start(prefix, case, suffix):
    frame, decoder = case
    found, _ = scan(prefix + g8a.encode(frame) + suffix, decoder)
    start = len(prefix)
    covered = any(offset < start < offset + len(g8a.encode(f)) for offset, f in found)
    assert (start, frame) in found or covered


@given(replies(), st.integers(0, 10), st.integers(0, 7))
def test_single_bit_flip_in_a_reply_never_decodes_at_its_start(case, index, bit):
    # With the reply kind fixed, the length is fixed and XOR catches any one flipped bit. A status
    # byte that is itself a head byte can still start a hidden frame further on.
    frame, decoder = case
    raw = bytearray(g8a.encode(frame))
    index %= len(raw)
    raw[index] ^= 1 << bit
    found, _ = scan(bytes(raw), decoder)
    assert all(offset > 0 and raw[offset] in g8a.REPLY_HEADS for offset, _ in found)


@given(requests, st.integers(0, 5), st.integers(0, 7))
def test_single_bit_flip_in_a_request_never_opens_a_lock_that_was_not_asked_for(frame, index, bit):
    # Every single flip of every open, query and keep-energised request was tried; for open-several
    # only a flipped head can change the frame's kind or length (0x90 -> 0x80, a 5-byte query).
    # Two ways through, both harmless: bit 7 of a pulse byte can leave a valid plain open of the
    # same lock (below), and the open-several head flip can leave a valid query.
    raw = bytearray(g8a.encode(frame))
    index %= len(raw)
    raw[index] ^= 1 << bit
    found, _ = scan(bytes(raw), g8a.decode_request)
    at_start = [f for offset, f in found if offset == 0]
    if not at_start:
        return
    [decoded] = at_start
    if isinstance(frame, OpenRequest):
        assert frame.pulse_s is not None and index == 4
        assert decoded == OpenRequest(frame.board, frame.lock)
    else:
        assert isinstance(frame, OpenSeveralRequest) and index == 0
        assert isinstance(decoded, QueryRequest)


def test_known_limit_a_flipped_pulse_bit_turns_a_timed_open_into_a_plain_one():
    raw = bytearray(g8a.encode(OpenRequest(0, 18, pulse_s=9)))
    assert raw.hex(" ") == "8a 00 12 11 09 80"
    raw[4] ^= 0x80
    assert g8a.decode_request(raw) == (5, OpenRequest(0, 18))
