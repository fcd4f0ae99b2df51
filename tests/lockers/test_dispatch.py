import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockers.dispatch import DEFAULT_COLLECTIONS, DispatchSchedule, parse_hhmm

SH = ZoneInfo("Asia/Shanghai")
UTC = dt.timezone.utc
DAY = dt.date(2026, 11, 16)


def at(hour, minute=0, second=0, day=DAY, tz=SH):
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=tz)


@pytest.fixture
def schedule():
    return DispatchSchedule()


def test_defaults(schedule):
    assert schedule.collections == (dt.time(9, 30), dt.time(12, 30), dt.time(17, 30)) == DEFAULT_COLLECTIONS
    assert (schedule.same_day_cutoff, schedule.regional_cutoff, schedule.regional_by) == (
        dt.time(11), dt.time(17), dt.time(10))
    assert schedule.tz == SH


def test_same_day_cutoff_boundary(schedule):
    before = schedule.promise(at(10, 59, 59))
    assert before.leaves_same_day and before.leaves_on == DAY
    assert before.next_collection == at(12, 30)
    on = schedule.promise(at(11, 0, 0))
    assert not on.leaves_same_day and on.leaves_on == DAY + dt.timedelta(days=1)
    assert on.next_collection == at(12, 30)  # the timetable, not a promise


def test_regional_cutoff_boundary(schedule):
    assert schedule.promise(at(16, 59, 59)).regional_centre_by == at(10, day=DAY + dt.timedelta(days=1))
    assert schedule.promise(at(17, 0, 0)).regional_centre_by == at(10, day=DAY + dt.timedelta(days=2))


def test_early_morning_counts_for_today(schedule):
    p = schedule.promise(at(0, 0, 0))
    assert p.next_collection == at(9, 30) and p.leaves_same_day
    assert p.regional_centre_by == at(10, day=DAY + dt.timedelta(days=1))


def test_a_collection_takes_items_posted_at_its_minute(schedule):
    assert schedule.promise(at(9, 30, 0)).next_collection == at(9, 30)
    assert schedule.promise(at(9, 30, 1)).next_collection == at(12, 30)


def test_after_the_last_collection_the_next_days_first(schedule):
    p = schedule.promise(at(17, 30, 1))
    assert p.next_collection == at(9, 30, day=DAY + dt.timedelta(days=1))
    assert not p.leaves_same_day
    # across a month and a year end
    p = schedule.promise(at(23, 59, 59, day=dt.date(2026, 12, 31)))
    assert p.next_collection == at(9, 30, day=dt.date(2027, 1, 1))
    assert p.regional_centre_by == at(10, day=dt.date(2027, 1, 2))


def test_other_zones_are_converted_to_the_station_clock(schedule):
    # 02:59:59 UTC is 10:59:59 in Shanghai; 03:00 UTC is 11:00
    assert schedule.promise(dt.datetime(2026, 11, 16, 2, 59, 59, tzinfo=UTC)).leaves_same_day
    p = schedule.promise(dt.datetime(2026, 11, 16, 3, 0, tzinfo=UTC))
    assert not p.leaves_same_day
    assert p.next_collection.tzinfo == SH and p.next_collection == at(12, 30)
    # late evening UTC is the next morning in Shanghai
    p = schedule.promise(dt.datetime(2026, 11, 15, 23, 0, tzinfo=UTC))
    assert p.posted_at.date() == DAY and p.leaves_on == DAY and p.next_collection == at(9, 30)


def test_no_dst_in_the_station_zone(schedule):
    # Shanghai kept UTC+8 all year (no DST since 1991): same answers in January and July
    for day in (dt.date(2026, 1, 15), dt.date(2026, 7, 15)):
        assert at(12, day=day).utcoffset() == dt.timedelta(hours=8)
        assert schedule.promise(at(12, day=day)).next_collection == at(12, 30, day=day)


def test_naive_datetime_refused(schedule):
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.promise(dt.datetime(2026, 11, 16, 10, 0))
    with pytest.raises(TypeError):
        schedule.promise(DAY)


def test_from_config():
    s = DispatchSchedule.from_config({"collections": ["17:45", "08:00"], "same_day_cutoff": "07:30",
                                      "regional_cutoff": "16:00", "regional_by": "09:00",
                                      "timezone": "Asia/Urumqi"})
    assert s.collections == (dt.time(8), dt.time(17, 45))  # sorted
    assert s.same_day_cutoff == dt.time(7, 30) and s.regional_by == dt.time(9)
    assert s.tz == ZoneInfo("Asia/Urumqi")
    assert DispatchSchedule.from_config({}) == DispatchSchedule()
    # TOML local times arrive as datetime.time
    assert DispatchSchedule.from_config({"collections": [dt.time(12)]}).collections == (dt.time(12),)


@pytest.mark.parametrize(("config", "message"), [
    ({"collections": ["9:30"]}, "collections\\[0\\].*HH:MM"),
    ({"collections": ["24:00"]}, "HH:MM"),
    ({"collections": ["12:60"]}, "HH:MM"),
    ({"collections": "12:30"}, "list of times"),
    ({"collections": []}, "at least one"),
    ({"collections": ["12:30", "12:30"]}, "repeated times 12:30"),
    ({"collections": ["09:30"]}, "before the same-day cut-off"),
    ({"same_day_cutoff": 11}, "same_day_cutoff"),
    ({"timezone": "Mars/Olympus"}, "unknown zone"),
    ({"collection": ["09:30"]}, "unknown keys collection"),
])
def test_from_config_refuses(config, message):
    with pytest.raises(ValueError, match=message):
        DispatchSchedule.from_config(config)


def test_parse_hhmm_refuses_an_aware_time():
    with pytest.raises(ValueError, match="without a time zone"):
        parse_hhmm(dt.time(9, tzinfo=UTC), "x")


def test_max_wait():
    assert DispatchSchedule().max_wait() == dt.timedelta(hours=16)  # 17:30 -> 09:30
    assert DispatchSchedule(collections=(dt.time(12),)).max_wait() == dt.timedelta(hours=24)


zones = st.sampled_from([SH, UTC, ZoneInfo("Europe/London"), ZoneInfo("America/New_York"),
                         ZoneInfo("Pacific/Kiritimati")])
instants = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 30), timezones=zones,
                     allow_imaginary=False)
schedules = st.lists(st.times(), min_size=1, max_size=6, unique=True).filter(
    lambda ts: max(ts) >= dt.time(11)).map(lambda ts: DispatchSchedule(collections=tuple(ts)))


@settings(max_examples=500)
@given(posted=instants, schedule=st.one_of(st.just(DispatchSchedule()), schedules))
def test_promise_properties(posted, schedule):
    p = schedule.promise(posted)
    assert p.next_collection >= posted
    assert p.next_collection - posted <= schedule.max_wait() <= dt.timedelta(hours=24)
    local = posted.astimezone(SH)
    assert p.next_collection.tzinfo == SH and p.posted_at.timestamp() == posted.timestamp()
    assert p.next_collection.time() in schedule.collections
    assert p.leaves_same_day == (local.time() < schedule.same_day_cutoff)
    if p.leaves_same_day:
        assert p.next_collection.date() == local.date()
    assert p.regional_centre_by > posted
    assert p.regional_centre_by.time() == schedule.regional_by
    assert (p.regional_centre_by.date() - local.date()).days in (1, 2)
