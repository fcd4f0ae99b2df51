import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockers.address import (
    MAX_INPUT_CHARS,
    Address,
    ParsedContact,
    parse_address,
    parse_contact_line,
    province_names,
    province_of,
    warm_up,
)
from lockers.personal import normalize_phone


@pytest.fixture(scope="module", autouse=True)
def _library_loaded():
    warm_up()


def fields(contact: ParsedContact) -> tuple[str, ...]:
    a = contact.address
    return (contact.name, contact.phone, a.province, a.city, a.district, a.street)


def test_the_issue_example_fills_every_field():
    contact = parse_contact_line("张三 138 1234 5678 浙江省杭州市西湖区文三路 100 号")
    assert fields(contact) == ("张三", "13812345678", "浙江省", "杭州市", "西湖区", "文三路100号")
    assert contact.missing == ()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("张三13812345678浙江省杭州市西湖区文三路100号",
         ("张三", "13812345678", "浙江省", "杭州市", "西湖区", "文三路100号")),
        ("13812345678 张三 浙江省杭州市西湖区文三路100号",
         ("张三", "13812345678", "浙江省", "杭州市", "西湖区", "文三路100号")),
        ("+86 138-1234-5678 王五 上海市浦东新区世纪大道100号",
         ("王五", "13812345678", "上海市", "上海市", "浦东新区", "世纪大道100号")),
        ("收件人：李四，电话13912345678，地址：北京市海淀区中关村大街1号",
         ("李四", "13912345678", "北京市", "北京市", "海淀区", "中关村大街1号")),
        ("姓名张三电话13812345678地址杭州市西湖区文三路100号",
         ("张三", "13812345678", "浙江省", "杭州市", "西湖区", "文三路100号")),
        ("赵六 0571-88886666 杭州市西湖区文三路100号",
         ("赵六", "0571-88886666", "浙江省", "杭州市", "西湖区", "文三路100号")),
        ("孙八 010 12345678 北京朝阳区建国路1号",
         ("孙八", "010-12345678", "北京市", "北京市", "朝阳区", "建国路1号")),
        ("浙江省杭州市西湖区文三路100号 钱七 13812345678",
         ("钱七", "13812345678", "浙江省", "杭州市", "西湖区", "文三路100号")),
        ("周九,008613812345678,新疆乌鲁木齐市天山区人民路1号",
         ("周九", "13812345678", "新疆维吾尔自治区", "乌鲁木齐市", "天山区", "人民路1号")),
        ("诸葛·孔明 13912345678 四川省成都市武侯区武侯祠大街231号",
         ("诸葛·孔明", "13912345678", "四川省", "成都市", "武侯区", "武侯祠大街231号")),
        ("吴十 15012345678 重庆市渝中区解放碑民族路1号",
         ("吴十", "15012345678", "重庆市", "重庆市", "渝中区", "解放碑民族路1号")),
        ("陈一 18612345678 杭州市临平区南苑街道人民大道1号",
         ("陈一", "18612345678", "浙江省", "杭州市", "临平区", "南苑街道人民大道1号")),
        ("林二 17712345678 广西南宁市青秀区民族大道1号",
         ("林二", "17712345678", "广西壮族自治区", "南宁市", "青秀区", "民族大道1号")),
        ("张三浙江省杭州市西湖区文三路100号",
         ("张三", "", "浙江省", "杭州市", "西湖区", "文三路100号")),
        ("8号楼 1单元 1302室 13812345678",
         ("", "13812345678", "", "", "", "8号楼1单元1302室")),
    ],
)
def test_varied_lines(line, expected):
    assert fields(parse_contact_line(line)) == expected


def test_missing_parts_are_named():
    assert parse_contact_line("欧阳娜娜 13812345678").missing == ("province", "city", "district", "street")
    assert parse_contact_line("张三浙江省杭州市西湖区文三路100号").missing == ("phone",)
    assert parse_contact_line("").missing == ("name", "phone", "province", "city", "district", "street")


def test_an_ambiguous_district_alone_leaves_province_unknown():
    # 西湖区 exists in Hangzhou and in Nanchang: the library must not guess.
    contact = parse_contact_line("张三 13812345678 西湖区文三路100号")
    assert contact.address.district == "西湖区"
    assert "province" in contact.missing


def test_a_house_number_is_not_read_as_a_phone():
    contact = parse_contact_line("张三 浙江省杭州市西湖区文三路1302号 13812345678")
    assert contact.phone == "13812345678"
    assert contact.address.street == "文三路1302号"


def test_odd_input_gives_an_empty_result():
    for text in ["", "   ", "😀" * 500, "\x00\x01", "\ud800", None, 12345]:
        contact = parse_contact_line(text)  # type: ignore[arg-type]
        assert contact.phone == ""
        assert contact.address.province == ""


def test_input_is_capped():
    tail = "张三 13812345678 浙江省杭州市西湖区文三路100号"
    contact = parse_contact_line("，" * MAX_INPUT_CHARS + tail)
    assert fields(contact) == ("", "", "", "", "", "")


def test_repr_masks_personal_data():
    contact = parse_contact_line("张三丰 138 1234 5678 浙江省杭州市西湖区文三路 100 号")
    text = repr(contact)
    assert "13812345678" not in text and "138****5678" in text
    assert "张三丰" not in text and "'张*'" in text
    assert "100" not in text and "文三路" not in text
    assert "西湖区" in text


def test_one_line_does_not_repeat_a_municipality():
    assert Address("上海市", "上海市", "浦东新区", "世纪大道100号").one_line() == "上海市浦东新区世纪大道100号"
    assert Address("浙江省", "杭州市", "西湖区", "文三路100号").one_line() == "浙江省杭州市西湖区文三路100号"


def test_province_of():
    assert province_of("杭州市西湖区文三路100号") == "浙江省"
    assert province_of("新疆乌鲁木齐市天山区") == "新疆维吾尔自治区"
    assert province_of("上海浦东新区") == "上海市"
    assert province_of("文三路100号") is None
    assert province_of("") is None
    assert parse_address("地址：北京市海淀区中关村大街1号").street == "中关村大街1号"


def test_the_library_knows_every_province_level_division():
    names = province_names()
    assert len(names) == 34
    assert {"浙江省", "上海市", "新疆维吾尔自治区", "内蒙古自治区", "香港特别行政区"} <= set(names)


def test_fast_enough_per_keystroke():
    line = "收件人：李四，电话13912345678，地址：北京市海淀区中关村大街1号"
    started = time.perf_counter()
    for _ in range(20):
        parse_contact_line(line)
    assert (time.perf_counter() - started) / 20 < 0.05


_PIECES = st.sampled_from(
    ["张三", "收件人：", "电话", "+86", "0086", "138", "1234", "5678", "0571", "-", " ", "，", "浙江省",
     "杭州市", "西湖区", "文三路", "100号", "0", "1", "9", "😀", "·", "\n"]
)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=300), st.lists(_PIECES, max_size=30).map("".join)))
def test_any_text_parses_and_the_phone_is_normalised(text):
    contact = parse_contact_line(text)
    assert isinstance(contact, ParsedContact)
    if contact.phone:
        if contact.phone.startswith("0"):
            assert re.fullmatch(r"0(?:[12]\d|[3-9]\d{2})-\d{7,8}", contact.phone)
        else:
            assert normalize_phone(contact.phone) == contact.phone
    assert set(contact.missing) <= {"name", "phone", "province", "city", "district", "street"}
