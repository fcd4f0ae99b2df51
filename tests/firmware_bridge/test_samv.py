import datetime as dt
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge import samv
from firmware_bridge.samv import BadFrame, CardType, Command, Reply, Request, Sex, Status, TextBlock
from tests.firmware_bridge.framing import frames_in

# -- golden bytes: every command row of §2.2 ------------------------------------------------------

GOLDEN_REQUESTS = [
    (Command.RESET, "AA AA AA 96 69 00 03 10 FF EC"),
    (Command.SAM_STATUS, "AA AA AA 96 69 00 03 11 FF ED"),
    (Command.SAM_ID, "AA AA AA 96 69 00 03 12 FF EE"),
    (Command.FIND, "AA AA AA 96 69 00 03 20 01 22"),
    (Command.SELECT, "AA AA AA 96 69 00 03 20 02 21"),
    (Command.READ, "AA AA AA 96 69 00 03 30 01 32"),
    (Command.READ_WITH_FINGERPRINT, "AA AA AA 96 69 00 03 30 10 23"),
    (Command.READ_EXTRA_ADDRESS, "AA AA AA 96 69 00 03 30 03 30"),
]


@pytest.mark.parametrize("command, wire", GOLDEN_REQUESTS, ids=[c.name for c, _ in GOLDEN_REQUESTS])
def test_request_golden_bytes(command, wire):
    raw = bytes.fromhex(wire)
    assert samv.encode(samv.request(command)) == raw
    assert samv.decode_request(raw) == (len(raw), Request(command.cmd, command.para))
    assert samv.decode_request(raw)[1].command is command


# -- golden replies of §2.2 ----------------------------------------------------------------------

GOLDEN_REPLIES = [
    ("find OK", "AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97", Reply(0, 0, 0x9F, bytes(4))),
    ("find FAIL", "AA AA AA 96 69 00 04 00 00 80 84", Reply(0, 0, 0x80)),
    ("select OK", "AA AA AA 96 69 00 0C 00 00 90 00 00 00 00 00 00 00 00 9C", Reply(0, 0, 0x90, bytes(8))),
    # "select FAIL: SW3 = 0x81": the frame is derived (LEN 4, CHK 04^81)
    ("select FAIL", "AA AA AA 96 69 00 04 00 00 81 85", Reply(0, 0, 0x81)),
]


@pytest.mark.parametrize("name, wire, frame", GOLDEN_REPLIES, ids=[g[0] for g in GOLDEN_REPLIES])
def test_reply_golden_bytes(name, wire, frame):
    raw = bytes.fromhex(wire)
    assert samv.decode(raw) == (len(raw), frame)
    assert samv.encode(frame) == raw


def test_find_and_select_replies_mean_what_the_table_says():
    assert samv.decode(bytes.fromhex(GOLDEN_REPLIES[0][1]))[1].status is Status.CARD_FOUND
    assert samv.decode(bytes.fromhex(GOLDEN_REPLIES[1][1]))[1].status is Status.FIND_FAILED
    assert samv.decode(bytes.fromhex(GOLDEN_REPLIES[0][1]))[1].ok
    assert not samv.decode(bytes.fromhex(GOLDEN_REPLIES[1][1]))[1].ok
    assert Reply(0, 0, 0x55).status is None and not Reply(1, 0, 0x90).ok


def resident_sample_text():
    """The §2.4 round-trip sample (its ID number is layout data only: the check character is wrong)."""
    return TextBlock(card_type=CardType.RESIDENT, name="张三", sex=Sex.MALE, nation="01", birth=dt.date(1990, 1, 1),
                     address="北京市东城区测试路1号", id_number="11010119900101123X", authority="北京市公安局东城分局",
                     valid_from=dt.date(2020, 1, 1), valid_to=dt.date(2040, 1, 1))


def test_read_reply_is_1295_bytes_with_the_documented_header():
    photo = bytes(range(256)) * 4
    raw = samv.encode(samv.reply(Status.SUCCESS, samv.read_data(samv.encode_text(resident_sample_text()), photo)))
    assert len(raw) == 1295
    assert raw[:14] == bytes.fromhex("AA AA AA 96 69 05 08 00 00 90 01 00 04 00")
    consumed, reply = samv.decode(raw)
    assert consumed == 1295 and reply.sw3 == 0x90
    data = samv.parse_read_data(reply.data)
    assert len(data.text) == 256 and data.photo == photo and data.fingerprint is None


@pytest.mark.parametrize("fp_len", [1024, 512, 0])
def test_read_with_fingerprint_reply(fp_len):
    fp = bytes([0x5A]) * fp_len
    photo = bytes(1024)
    raw = samv.encode(samv.reply(0x90, samv.read_data(samv.encode_text(resident_sample_text()), photo, fp)))
    if fp_len == 1024:
        assert raw[:16] == bytes.fromhex("AA AA AA 96 69 09 0A 00 00 90 01 00 04 00 04 00")
        assert len(raw) == 7 + 0x090A
    data = samv.parse_read_data(samv.decode(raw)[1].data)
    assert data.fingerprint == fp and data.photo == photo and len(data.text) == 256


def test_lengths_are_read_from_the_reply_not_assumed():
    text = samv.encode_text(resident_sample_text())
    data = samv.parse_read_data(bytes.fromhex("01 00 00 10") + text + bytes(16))  # a 16-byte "photo"
    assert len(data.photo) == 16 and data.text == text
    assert samv.parse_read_data(bytes.fromhex("00 00 00 00")).text == b""
    with pytest.raises(samv.SamvFormatError, match="do not match"):
        samv.parse_read_data(bytes.fromhex("01 00 04 00") + text)  # the photo is missing
    with pytest.raises(samv.SamvFormatError):
        samv.parse_read_data(b"\x01\x00")


def test_the_section_2_4_round_trip_sample():
    raw = samv.encode(samv.reply(0x90, samv.read_data(samv.encode_text(resident_sample_text()), bytes(1024))))
    assert len(raw) == 1295
    text = samv.parse_text(samv.parse_read_data(samv.decode(raw)[1].data).text)
    assert text.card_type is CardType.RESIDENT
    assert [text.name, str(int(text.sex)), text.nation, f"{text.birth:%Y%m%d}", text.address, text.id_number,
            text.authority, f"{text.valid_from:%Y%m%d}", f"{text.valid_to:%Y%m%d}"] == [
        "张三", "1", "01", "19900101", "北京市东城区测试路1号", "11010119900101123X", "北京市公安局东城分局",
        "20200101", "20400101"]


# -- the layouts, built by hand from the §2.4 offsets (not with encode_text) ------------------------


def block_with(fields, flag=None, pad=" "):
    block = bytearray(pad.encode("utf-16-le") * 128)
    for offset, value in fields.items():
        data = value.encode("utf-16-le")
        block[offset:offset + len(data)] = data
    if flag:
        block[248:250] = flag.encode("utf-16-le")
    return bytes(block)


def test_resident_layout_offsets_and_long_term():
    block = block_with({0: "李四", 30: "2", 32: "03", 36: "19851231", 52: "上海市徐汇区某路2号",
                        122: "310104198512310027", 158: "上海市公安局徐汇分局", 188: "20100101", 204: "长期"})
    text = samv.parse_text(block)
    assert (text.card_type, text.name, text.sex, text.nation) == (CardType.RESIDENT, "李四", Sex.FEMALE, "03")
    assert (text.birth, text.valid_from, text.valid_to) == (dt.date(1985, 12, 31), dt.date(2010, 1, 1), None)
    assert (text.address, text.id_number, text.authority) == ("上海市徐汇区某路2号", "310104198512310027", "上海市公安局徐汇分局")
    assert text.pass_number is None and text.chinese_name is None


def test_nul_padding_and_a_nul_type_flag_also_read_as_a_resident_card():
    block = block_with({0: "王五", 30: "1", 32: "01", 36: "19700101", 122: "110101197001010018",
                        188: "20200101", 204: "20400101"}, pad="\x00")
    text = samv.parse_text(block)
    assert text.card_type is CardType.RESIDENT and text.name == "王五" and text.address == ""


def test_hk_mo_tw_residence_permit_layout():
    block = block_with({0: "陈大文", 30: "1", 36: "19800202", 52: "广东省深圳市福田区某路3号", 122: "810000198002021234",
                        158: "深圳市公安局", 188: "20190101", 204: "20240101", 220: "H12345678", 238: "03"}, flag="J")
    text = samv.parse_text(block)
    assert text.card_type is CardType.HK_MO_TW_PERMIT
    assert (text.name, text.sex, text.birth) == ("陈大文", Sex.MALE, dt.date(1980, 2, 2))
    assert (text.id_number, text.pass_number, text.issue_count) == ("810000198002021234", "H12345678", 3)
    assert text.nation is None and text.valid_to == dt.date(2024, 1, 1)


def test_foreign_permanent_resident_layout():
    block = block_with({0: "SMITH, JOHN", 120: "1", 122: "USA110000000001", 152: "USA", 158: "史密斯",
                        188: "20180301", 204: "20280301", 220: "19750505", 236: "01", 240: "1500"}, flag="I")
    text = samv.parse_text(block)
    assert text.card_type is CardType.FOREIGN_PERMANENT
    assert (text.name, text.chinese_name, text.nationality) == ("SMITH, JOHN", "史密斯", "USA")
    assert (text.id_number, text.version, text.authority) == ("USA110000000001", "01", "1500")
    assert (text.birth, text.valid_from, text.valid_to) == (dt.date(1975, 5, 5), dt.date(2018, 3, 1), dt.date(2028, 3, 1))
    assert text.address is None and text.nation is None


def test_unknown_type_flag_and_bad_dates_are_the_declared_error():
    with pytest.raises(samv.UnknownCardType) as err:
        samv.parse_text(block_with({36: "19900101", 188: "20200101", 204: "20300101"}, flag="Y"))
    assert err.value.flag == "Y"
    with pytest.raises(samv.SamvFormatError, match="birth is not a calendar date"):
        samv.parse_text(block_with({36: "19900230", 188: "20200101", 204: "20300101"}))
    with pytest.raises(samv.SamvFormatError, match="valid_to is not a YYYYMMDD date"):
        samv.parse_text(block_with({36: "19900101", 188: "20200101", 204: "2030-1-1"}))
    with pytest.raises(samv.SamvFormatError, match="256 bytes"):
        samv.parse_text(bytes(255))


def test_sex_and_nation_codes():
    assert samv.NATIONS["01"] == "汉" and samv.NATIONS["56"] == "基诺" and samv.NATIONS["97"] == "其他"
    assert len(samv.NATIONS) == 58
    block = block_with({30: "9", 36: "19900101", 188: "20200101", 204: "20300101"})
    assert samv.parse_text(block).sex is Sex.UNSPECIFIED
    assert samv.parse_text(block_with({30: "7", 36: "19900101", 188: "20200101", 204: "20300101"})).sex is Sex.UNKNOWN


def test_a_field_too_long_for_its_layout_is_refused_by_the_encoder():
    with pytest.raises(ValueError, match="name"):
        samv.encode_text(TextBlock(CardType.RESIDENT, "长" * 16, Sex.MALE, dt.date(1990, 1, 1), "1" * 18,
                                   dt.date(2020, 1, 1), None))


def test_reprs_hold_no_personal_data():
    text = resident_sample_text()
    frame = samv.reply(0x90, samv.read_data(samv.encode_text(text), bytes(1024)))
    data = samv.parse_read_data(frame.data)
    for shown in (repr(text), repr(frame), repr(data), str(text)):
        assert "张三" not in shown and "1101" not in shown and "北京" not in shown


# -- resynchronisation ------------------------------------------------------------------------------

FIND_OK = bytes.fromhex(GOLDEN_REPLIES[0][1])
FIND_FAIL = bytes.fromhex(GOLDEN_REPLIES[1][1])


def test_garbage_before_a_reply_is_skipped():
    buf = bytearray(b"\x00\xaa\x96noise" + FIND_OK)
    assert samv.decode(buf) == (8, None)
    del buf[:8]
    assert samv.decode(buf)[1] == Reply(0, 0, 0x9F, bytes(4))


@pytest.mark.parametrize("tail", [b"\xaa", b"\xaa\xaa", b"\xaa\xaa\xaa", b"\xaa\xaa\xaa\x96"])
def test_a_partial_preamble_at_the_end_is_kept(tail):
    assert samv.decode(b"xyz" + tail) == (3, None)
    assert samv.decode(tail) == (0, None)


def test_a_reply_arriving_byte_by_byte_decodes_once_complete():
    buf = bytearray()
    for i, byte in enumerate(FIND_OK):
        buf.append(byte)
        consumed, frame = samv.decode(buf)
        if i < len(FIND_OK) - 1:
            assert (consumed, frame) == (0, None)
    assert frame == Reply(0, 0, 0x9F, bytes(4))


def test_a_bad_checksum_is_reported_and_the_next_reply_found():
    bad = FIND_OK[:-1] + bytes([FIND_OK[-1] ^ 0x40])
    found, skipped = frames_in(bad + FIND_FAIL, samv.decode, lambda rest: False)
    assert [frame for _, frame in found] == [BadFrame("checksum", len(bad)), Reply(0, 0, 0x80)]


def test_a_length_too_short_is_reported():
    assert samv.decode(bytes.fromhex("AA AA AA 96 69 00 02 00 02")) == (7, BadFrame("length", 7))
    assert samv.decode_request(bytes.fromhex("AA AA AA 96 69 00 02 20 22")) == (7, BadFrame("length", 7))


def test_a_length_beyond_any_frame_is_a_false_start():
    buf = bytes.fromhex("AA AA AA 96 69 FF FF 00") + FIND_FAIL
    assert samv.decode(buf) == (1, None)
    found, skipped = frames_in(buf, samv.decode, lambda rest: False)
    assert [frame for _, frame in found] == [Reply(0, 0, 0x80)] and skipped == 8
    longest = samv.reply(0x90, bytes(2310))  # LEN 0x090A, the read-with-fingerprint reply, still accepted
    assert samv.decode(samv.encode(longest))[1] == longest
    with pytest.raises(ValueError):
        samv.encode(samv.reply(0x90, bytes(2311)))


def test_frames_back_to_back_and_a_request_bad_checksum():
    found, _ = frames_in(FIND_FAIL + FIND_OK + FIND_FAIL, samv.decode, lambda rest: False)
    assert [f.sw3 for _, f in found] == [0x80, 0x9F, 0x80]
    bad = bytes.fromhex("AA AA AA 96 69 00 03 20 01 23")
    assert samv.decode_request(bad) == (len(bad), BadFrame("checksum", len(bad)))


# -- property tests -------------------------------------------------------------------------------

def may_wait(rest, min_len=samv.MIN_REPLY_LEN, max_len=samv.MAX_REPLY_LEN):
    """'Need more bytes' is legitimate only for a preamble start, or a whole preamble with a LEN
    that is sane and not yet satisfied."""
    rest = bytes(rest)
    if len(rest) < 5:
        return samv.PREAMBLE.startswith(rest)
    if not rest.startswith(samv.PREAMBLE):
        return False
    if len(rest) < 7:
        return True
    length = int.from_bytes(rest[5:7], "big")
    return min_len <= length <= max_len and len(rest) < 7 + length


# Garbled streams, cheaply (a list strategy costs several times more per example): random bytes
# whose upper half is folded onto the bytes frames are made of, and 0x7F becomes a whole preamble,
# so preambles, plausible LENs, status bytes and near-miss checksums turn up all the time.
_FRAME_BYTES = bytes.fromhex("7F 7F 7F 7F 7F 7F AA 96 69 00 00 00 00 00 04 08 0C 90 9F 80 05 09 0A 01 10 20 FF 84 97 9C")
_FOLD = bytes(range(128)) + bytes(_FRAME_BYTES[i % len(_FRAME_BYTES)] for i in range(128))
garbled = st.binary(max_size=64).map(lambda b: b.translate(_FOLD).replace(b"\x7f", samv.PREAMBLE))


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbled)
def test_decode_never_raises_and_never_stalls_on_garbled_bytes(buf):
    found, _ = frames_in(buf, samv.decode, may_wait)
    for _, frame in found:
        assert isinstance(frame, (Reply, BadFrame))
    found, _ = frames_in(buf, samv.decode_request, lambda rest: may_wait(rest, samv.MIN_REQUEST_LEN,
                                                                         samv.MAX_REQUEST_LEN))
    assert all(isinstance(frame, (Request, BadFrame)) for _, frame in found)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64))
def test_decode_never_raises_on_uniform_random_bytes(buf):
    assert frames_in(buf, samv.decode, may_wait)


replies = st.builds(samv.reply, st.integers(0, 255), st.binary(max_size=40), st.integers(0, 255), st.integers(0, 255))
no_preamble = st.binary(max_size=30).filter(lambda b: b"\xaa" not in b)


@settings(max_examples=500)
@given(no_preamble, st.lists(replies, min_size=1, max_size=4), no_preamble)
def test_replies_between_garbage_are_all_found(prefix, frames, suffix):
    buf = prefix + b"".join(samv.encode(f) for f in frames) + suffix
    found, _ = frames_in(buf, samv.decode, lambda rest: False)
    assert [f for _, f in found] == frames


@settings(max_examples=1000)
@given(replies, st.integers(min_value=0), st.integers(1, 255))
def test_a_garbled_byte_never_yields_a_wrong_reply(frame, where, flip):
    raw = bytearray(samv.encode(frame))
    raw[where % len(raw)] ^= flip
    found, _ = frames_in(bytes(raw), samv.decode, may_wait)
    # XOR catches a single damaged byte: whatever decodes is the original or a reported bad frame
    for _, got in found:
        assert isinstance(got, BadFrame) or got == frame


@settings(max_examples=500)
@given(st.binary(min_size=256, max_size=256))
def test_parse_text_raises_only_the_declared_error(block):
    try:
        text = samv.parse_text(block)
    except samv.SamvFormatError:
        return
    assert isinstance(text, TextBlock)


@settings(max_examples=500)
@given(st.binary(max_size=80))
def test_parse_read_data_raises_only_the_declared_error(data):
    try:
        parsed = samv.parse_read_data(data)
    except samv.SamvFormatError:
        return
    total = 4 + len(parsed.text) + len(parsed.photo) + (0 if parsed.fingerprint is None else 2 + len(parsed.fingerprint))
    assert total == len(data)


bmp_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0xD7FF, exclude_characters="长"), max_size=15)
dates = st.dates(dt.date(1900, 1, 1), dt.date(2099, 12, 31))


@settings(max_examples=300)
@given(st.sampled_from(list(CardType)), bmp_text, st.sampled_from(list(Sex)), dates, dates, dates | st.none(),
       st.from_regex(r"[0-9]{17}[0-9X]", fullmatch=True), st.integers(0, 99))
def test_text_block_round_trip(card_type, name, sex, birth, valid_from, valid_to, number, count):
    extra = {
        CardType.RESIDENT: {"nation": "01", "address": name, "authority": name},
        CardType.HK_MO_TW_PERMIT: {"address": name, "authority": name, "pass_number": "H12345678", "issue_count": count},
        CardType.FOREIGN_PERMANENT: {"chinese_name": name, "nationality": "CAN", "version": "01", "authority": "1500"},
    }[card_type]
    text = TextBlock(card_type, name.strip(), sex, birth, number[:15] if card_type is CardType.FOREIGN_PERMANENT
                     else number, valid_from, valid_to, **extra)
    text = TextBlock(**{**text.__dict__, **{k: v.strip() for k, v in extra.items() if isinstance(v, str)}})
    block = samv.encode_text(text)
    assert len(block) == 256
    assert samv.parse_text(block) == text


def test_random_cards_survive_a_whole_read_reply():
    rng = random.Random(3)
    for card_type in CardType:
        blank_fields = {name: "" for name, _, _ in samv.LAYOUTS[card_type]
                        if name not in ("name", "sex", "birth", "id_number", "valid_from", "valid_to", "issue_count")}
        text = TextBlock(card_type, "测试", Sex.FEMALE, dt.date(1999, 9, 9),
                         "1" * (15 if card_type == "foreign_permanent" else 18), dt.date(2020, 2, 29), None, **blank_fields)
        photo = rng.randbytes(1024)
        raw = samv.encode(samv.reply(0x90, samv.read_data(samv.encode_text(text), photo)))
        data = samv.parse_read_data(samv.decode(raw)[1].data)
        assert samv.parse_text(data.text) == text and data.photo == photo
