import contextlib
import dataclasses
import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.codes import resident_id_check_char
from hal.idcard import CardType, IdCard, Sex
from lockers.identity import (
    ID_TYPES, REFUSAL_REASONS, IdentityRefused, PostingIdentity, identity_from_card, manual_identity,
)
from simulators.idcard import make_card

TODAY = dt.date(2026, 11, 16)
VALID = "11010519491231002X"  # spec §3.2: born 1949-12-31, female
INVALID = "11010119900101123X"  # spec §3.2: the check character must be 7


def resident(number=VALID, *, birth=dt.date(1949, 12, 31), sex=Sex.FEMALE, valid_to=dt.date(2030, 1, 1),
             valid_from=dt.date(2010, 1, 1), **kw):
    fields = dict(card_type=CardType.RESIDENT, name="王测试", sex=sex, birth=birth, id_number=number,
                  valid_from=valid_from, valid_to=valid_to, nation="01", address="北京市西城区测试路1号",
                  authority="北京市公安局西城分局")
    fields.update(kw)
    return IdCard(**fields)


def number_for(birth: dt.date, seq: int = 1, region: str = "110101") -> str:
    body = f"{region}{birth:%Y%m%d}{seq:03d}"
    return body + resident_id_check_char(body)


@contextlib.contextmanager
def refused(reason):
    with pytest.raises(IdentityRefused) as info:
        yield info
    assert info.value.reason == reason


def test_id_types_cover_r12():
    assert list(ID_TYPES) == ["resident_id", "temporary_resident_id", "hk_mo_tw_residence_permit",
                              "foreign_permanent_resident_id", "military_id", "armed_police_id",
                              "hk_mo_travel_permit", "tw_travel_permit", "foreign_passport"]
    assert {k for k, t in ID_TYPES.items() if t.sam_readable} == {
        "resident_id", "hk_mo_tw_residence_permit", "foreign_permanent_resident_id"}
    for t in ID_TYPES.values():
        assert t.title_zh and t.title_en
        assert t.gb11643 or t.pattern, t.id


def test_spec_vector_valid():
    ident = identity_from_card(resident(), TODAY)
    assert ident == PostingIdentity("resident_id", VALID, "王测试", "北京市西城区测试路1号", 76, True,
                                    read_by_reader=True)
    assert not hasattr(ident, "birth")
    assert not any(isinstance(getattr(ident, f.name), dt.date) for f in dataclasses.fields(ident))


def test_spec_vector_invalid_check_character():
    with refused("check_character"):
        identity_from_card(resident(INVALID, birth=dt.date(1990, 1, 1), sex=Sex.MALE), TODAY)
    with refused("check_character"):
        manual_identity("resident_id", INVALID, "王测试", TODAY)


def test_lowercase_x_is_normalised():
    assert identity_from_card(resident(VALID.lower()), TODAY).id_number == VALID
    assert manual_identity("resident_id", "110105 19491231 002x", "王测试", TODAY).id_number == VALID


@pytest.mark.parametrize(("today", "age", "elderly"), [
    (dt.date(2026, 3, 6), 59, False),  # the day before the 60th birthday
    (dt.date(2026, 3, 7), 60, True),  # the birthday
    (dt.date(2026, 3, 8), 60, True),
])
def test_age_on_birthday_boundaries(today, age, elderly):
    birth = dt.date(1966, 3, 7)
    ident = identity_from_card(resident(number_for(birth), birth=birth, sex=Sex.MALE), today)
    assert (ident.age, ident.elderly) == (age, elderly)


@pytest.mark.parametrize(("today", "age"), [
    (dt.date(2024, 2, 28), 59),
    (dt.date(2024, 2, 29), 60),  # leap year: on the day (and 60 years on is always a leap year until 2100)
    (dt.date(2025, 2, 28), 60),  # common year: not yet on 28 February
    (dt.date(2025, 3, 1), 61),  # ... but on 1 March
])
def test_age_of_someone_born_on_29_february(today, age):
    birth = dt.date(1964, 2, 29)
    ident = manual_identity("resident_id", number_for(birth), "张测试", today)
    assert ident.age == age and ident.elderly == (age >= 60)


def test_elderly_age_is_configurable():
    assert not identity_from_card(resident(), TODAY, elderly_age=80).elderly
    with pytest.raises(ValueError):
        identity_from_card(resident(), TODAY, elderly_age=0)


def test_expired_card():
    with refused("expired"):
        identity_from_card(resident(valid_to=TODAY - dt.timedelta(days=1)), TODAY)
    assert identity_from_card(resident(valid_to=TODAY), TODAY).id_type == "resident_id"  # valid through the day


def test_long_term_card_never_expires():
    card = resident(valid_to=None)  # 长期
    assert card.long_term
    assert identity_from_card(card, dt.date(2090, 1, 1)).id_number == VALID


def test_not_yet_valid():
    with refused("not_yet_valid"):
        identity_from_card(resident(valid_from=TODAY + dt.timedelta(days=1)), TODAY)


def test_birth_date_unreal_or_in_the_future():
    with refused("birth_date"):
        identity_from_card(resident(number_for(dt.date(2027, 1, 1)), birth=dt.date(2027, 1, 1)), TODAY)
    body = "11010119990230001"  # 30 February
    with refused("birth_date"):
        manual_identity("resident_id", body + resident_id_check_char(body), "李测试", TODAY)


def test_card_and_number_disagree():
    with refused("mismatch"):
        identity_from_card(resident(birth=dt.date(1949, 12, 30)), TODAY)
    with refused("mismatch"):
        identity_from_card(resident(sex=Sex.MALE), TODAY)  # 002: even, female
    assert identity_from_card(resident(sex=Sex.UNSPECIFIED), TODAY).age == 76


@pytest.mark.parametrize("change", [{"name": ""}, {"name": "  "}, {"id_number": ""}])
def test_unreadable_card(change):
    with refused("unreadable"):
        identity_from_card(resident(**change), TODAY)


def test_malformed_number():
    with refused("format"):
        identity_from_card(resident("1101051949123100"), TODAY)


def test_synthetic_cards_of_every_readable_type():
    rng = random.Random(5)
    kinds = ((CardType.RESIDENT, "resident_id"), (CardType.HK_MO_TW_PERMIT, "hk_mo_tw_residence_permit"),
             (CardType.FOREIGN_PERMANENT, "foreign_permanent_resident_id"))
    for card_type, id_type in kinds:
        for _ in range(20):
            card = IdCard.from_text(make_card(card_type, rng=rng, long_term=True), today=TODAY)
            ident = identity_from_card(card, TODAY)
            assert ident.id_type == id_type and ident.read_by_reader
            had_birthday = (TODAY.month, TODAY.day) >= (card.birth.month, card.birth.day)
            assert ident.age == TODAY.year - card.birth.year - (not had_birthday)
    card = IdCard.from_text(make_card(CardType.FOREIGN_PERMANENT, rng=rng), today=TODAY)
    assert identity_from_card(card, TODAY).name == card.chinese_name
    assert identity_from_card(card, TODAY).address is None


def test_foreign_permanent_card_checks():
    card = IdCard.from_text(make_card(CardType.FOREIGN_PERMANENT, rng=random.Random(1), long_term=True), today=TODAY)
    with refused("format"):
        identity_from_card(dataclasses.replace(card, id_number="12345"), TODAY)
    with refused("birth_date"):
        identity_from_card(dataclasses.replace(card, birth=TODAY + dt.timedelta(days=1)), TODAY)


@pytest.mark.parametrize(("id_type", "number", "stored"), [
    ("hk_mo_travel_permit", "h12345678", "H12345678"),
    ("hk_mo_travel_permit", "M1234567801", "M1234567801"),
    ("tw_travel_permit", "12345678", "12345678"),
    ("foreign_passport", "E 1234 5678", "E12345678"),
    ("military_id", "军字第1234567号", "军字第1234567号"),
    ("armed_police_id", "WJ12345678", "WJ12345678"),
])
def test_manual_types_without_a_birth_date(id_type, number, stored):
    ident = manual_identity(id_type, number, " John  Smith ", TODAY)
    assert (ident.id_type, ident.id_number, ident.name) == (id_type, stored, "John Smith")
    assert (ident.age, ident.elderly, ident.age_known, ident.read_by_reader, ident.address) == (
        0, False, False, False, None)


@pytest.mark.parametrize(("id_type", "number"), [
    ("hk_mo_travel_permit", "X12345678"), ("tw_travel_permit", "1234"), ("foreign_passport", "AB-12"),
    ("foreign_passport", "A" * 21), ("military_id", "1\n23"), ("foreign_passport", ""),
])
def test_manual_types_refuse_implausible_numbers(id_type, number):
    with refused("format"):
        manual_identity(id_type, number, "测试", TODAY)


def test_manual_resident_types_give_the_age():
    for id_type in ("resident_id", "temporary_resident_id", "hk_mo_tw_residence_permit"):
        ident = manual_identity(id_type, VALID, "王测试", TODAY)
        assert (ident.age, ident.elderly, ident.read_by_reader) == (76, True, False)


@pytest.mark.parametrize("name", ["", "   ", "王\x00测试", "x" * 65, None])
def test_manual_name_refused(name):
    with refused("name"):
        manual_identity("foreign_passport", "E12345678", name, TODAY)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="unknown ID type"):
        manual_identity("library_card", "123456", "王测试", TODAY)
    with pytest.raises(TypeError):
        manual_identity("resident_id", VALID, "王测试", dt.datetime(2026, 11, 16, 9, 0))
    with pytest.raises(TypeError):
        identity_from_card("not a card", TODAY)


def test_repr_and_masked_hide_personal_data():
    ident = identity_from_card(resident(), TODAY)
    for text in (repr(ident), str(ident), str(ident.masked())):
        assert VALID not in text and "19491231" not in text and "1949" not in text
        assert "王测试" not in text and "测试路" not in text
    assert "002X" in repr(ident) and "王*" in repr(ident)
    assert ident.masked_number == "**************002X"
    assert ident.masked()["address"] == "北京市西城区***"


def test_refusal_messages_hold_no_personal_data():
    with refused("check_character") as info:
        manual_identity("resident_id", INVALID, "王测试", TODAY)
    assert INVALID not in str(info.value) and "王" not in str(info.value)
    assert info.value.code == "identity_refused"
    assert set(REFUSAL_REASONS) >= {"check_character", "birth_date", "expired", "mismatch", "unreadable", "format"}


births = st.dates(min_value=dt.date(1900, 1, 1), max_value=TODAY)
regions = st.sampled_from(["110101", "310104", "440305", "510107", "650102", "810000"])


@settings(max_examples=500)
@given(birth=births, seq=st.integers(0, 999), region=regions, today=st.dates(TODAY, dt.date(2100, 1, 1)))
def test_generated_valid_numbers(birth, seq, region, today):
    number = number_for(birth, seq, region)
    ident = manual_identity("resident_id", number, "王测试", today)
    expected = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    assert ident.age == expected and ident.elderly == (expected >= 60)
    assert number not in repr(ident) and f"{birth:%Y%m%d}" not in repr(ident)
    card = resident(number, birth=birth, sex=Sex.MALE if seq % 2 else Sex.FEMALE, valid_to=None,
                    valid_from=dt.date(1900, 1, 1))
    assert identity_from_card(card, today).age == expected
    # any other check character is refused
    wrong = next(c for c in "0123456789X" if c != number[-1])
    with refused("check_character"):
        manual_identity("resident_id", number[:17] + wrong, "王测试", today)
