"""Money, dates and times per language: CNY with the yuan sign everywhere, dates the locale's way, the
station's clock for timestamps."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import jinja2
import pytest

from kiosk import i18n
from kiosk.errors import describe, money
from lockers import errors as e

LANGS = list(i18n.LANGUAGES)
# 2026-12-06 01:30 UTC is 09:30 in Beijing
MOMENT_UTC = datetime(2026, 12, 6, 1, 30, tzinfo=timezone.utc)
EPOCH = MOMENT_UTC.timestamp()


@pytest.fixture
def lang():
    tokens = []

    def use(locale: str) -> None:
        tokens.append(i18n.set_language(locale))

    yield use
    for token in reversed(tokens):
        i18n._current.reset(token)


def test_all_three_languages_are_on_the_switch():
    assert LANGS == ["zh_Hans_CN", "zh_Hant_HK", "en"]


@pytest.mark.parametrize("locale", LANGS)
@pytest.mark.parametrize("fen,text", [(0, "¥0.00"), (5, "¥0.05"), (1250, "¥12.50"), (100000, "¥1,000.00"),
                                      (-500, "-¥5.00"), (99, "¥0.99"), (123456789, "¥1,234,567.89")])
def test_money_is_yuan_with_the_yuan_sign_in_every_language(lang, locale, fen, text):
    lang(locale)
    assert i18n.format_money(fen) == text
    assert money(fen) == text  # errors.money is the same formatter
    assert "CN" not in text


@pytest.mark.parametrize("bad", [12.5, "1250", None, True])
def test_money_refuses_anything_but_integer_fen(bad):
    with pytest.raises(TypeError, match="integer fen"):
        i18n.format_money(bad)


@pytest.mark.parametrize("locale,short,full", [("zh_Hans_CN", "12月6日", "2026年12月6日"),
                                               ("zh_Hant_HK", "12月6日", "2026年12月6日"),
                                               ("en", "Dec 6", "Dec 6, 2026")])
def test_dates_per_language(lang, locale, short, full):
    lang(locale)
    assert i18n.format_date(date(2026, 12, 6)) == short
    assert i18n.format_date(date(2026, 12, 6), year=True) == full
    assert i18n.format_date(EPOCH) == short  # a timestamp is shown as the station's day


@pytest.mark.parametrize("locale", LANGS)
def test_times_are_24_hour_in_every_language(lang, locale):
    lang(locale)
    assert i18n.format_time(time(9, 30)) == "09:30"
    assert i18n.format_time(time(21, 5)) == "21:05"
    assert i18n.format_time(EPOCH) == "09:30"


@pytest.mark.parametrize("locale,text", [("zh_Hans_CN", "12月6日 09:30"), ("zh_Hant_HK", "12月6日 09:30"),
                                         ("en", "Dec 6, 09:30")])
def test_datetimes_per_language(lang, locale, text):
    lang(locale)
    assert i18n.format_datetime(MOMENT_UTC) == text  # aware: converted to the station's clock
    assert i18n.format_datetime(EPOCH) == text  # epoch seconds, as the custody records keep them
    assert i18n.format_datetime(datetime(2026, 12, 6, 9, 30)) == text  # naive: already station time


def test_the_station_time_zone_decides_the_day_and_hour(lang):
    lang("en")
    late = datetime(2026, 12, 6, 16, 30, tzinfo=timezone.utc)  # 00:30 next day in Beijing
    assert i18n.format_datetime(late) == "Dec 7, 00:30"
    assert i18n.format_datetime(late, tz="UTC") == "Dec 6, 16:30"
    assert i18n.format_datetime(late, tz=ZoneInfo("Asia/Urumqi")) == "Dec 6, 22:30"
    assert i18n.format_date(late, tz="Asia/Shanghai", year=True) == "Dec 7, 2026"
    assert i18n.format_time(late.astimezone(timezone(timedelta(hours=-5)))) == "00:30"


def test_missing_values_render_empty_and_wrong_types_fail(lang):
    lang("zh_Hans_CN")
    assert i18n.format_date(None) == i18n.format_time(None) == i18n.format_datetime(None) == ""
    with pytest.raises(TypeError, match="datetime or epoch"):
        i18n.format_datetime("2026-12-06 09:30")
    with pytest.raises(TypeError):
        i18n.format_time(True)


@pytest.mark.parametrize("locale,text", [("zh_Hans_CN", "¥12.50 · 12月6日 · 09:30 · 12月6日 09:30"),
                                         ("zh_Hant_HK", "¥12.50 · 12月6日 · 09:30 · 12月6日 09:30"),
                                         ("en", "¥12.50 · Dec 6 · 09:30 · Dec 6, 09:30")])
def test_jinja_filters_follow_the_language_and_the_station_clock(lang, locale, text):
    env = jinja2.Environment(autoescape=True)
    env.filters.update(i18n.jinja_filters("Asia/Shanghai"))
    template = env.from_string("{{ fen|money }} · {{ at|date }} · {{ at|time }} · {{ at|datetime }}")
    lang(locale)
    assert template.render(fen=1250, at=EPOCH) == text
    assert env.from_string("{{ at|local_time }}{{ none|datetime }}").render(at=EPOCH, none=None) == text.split(" · ")[-1]
    assert env.from_string("{{ at|date(year=True) }}").render(at=EPOCH).startswith(("2026", "Dec 6, 2026"))


@pytest.mark.parametrize("locale,words", [("zh_Hans_CN", "需支付保管费 ¥0.50"), ("zh_Hant_HK", "需支付保管費 ¥0.50"),
                                          ("en", "storage fee of ¥0.50")])
def test_api_fee_message_uses_the_yuan_sign_in_every_language(lang, locale, words):
    lang(locale)
    status, body = describe(e.FeeDue(fee_fen=50, free_until=0.0))
    assert status == 402 and words in body["message"], body["message"]
