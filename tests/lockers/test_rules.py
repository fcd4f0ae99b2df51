"""Codes and guessing, QR tokens, consent, refusal, fees, reminders, retrieval, technician opens."""

from __future__ import annotations

import dataclasses
import re

import pytest

from lockers import invariants
from lockers.custody import CODE_DIGITS, CustodySettings, guessing_risk, storage_fee
from lockers.errors import (
    ConsentMissing,
    FeeDue,
    FlowConflict,
    KeypadPaused,
    NotAllowed,
    UnknownToken,
    WrongCode,
)
from postkiosk.config import Config
from tests.lockers.test_custody import PHONE, code_from, deposit, store


def token_from(sms) -> str:
    return re.search(r"扫码：(PK1-[A-Z2-7]+)", sms.recent[-1]["text"]).group(1)


async def sound(station):
    assert await station.db.read(invariants.check) == []


def test_guessing_at_the_cap_for_a_week_stays_under_one_percent_for_the_configured_station():
    config = Config()
    live_max = len(config.layout())  # at most one live parcel per compartment
    settings = config.custody_settings()
    assert guessing_risk(settings, live_max) <= 0.01
    # the bound of T-D1 for a large station of 300 compartments holds as well
    assert guessing_risk(settings, 300) <= 0.0101
    # and it would catch a weaker setting: 6-digit codes (64 %) or a looser hourly cap
    assert CODE_DIGITS >= 8
    assert 1 - (1 - 300 / 10 ** 6) ** (20 * 24 * 7) > 0.6
    assert guessing_risk(dataclasses.replace(settings, station_failures_per_hour=2000), 300) > 0.01


async def test_station_wide_budget_of_twenty_failures_an_hour_survives_restarts(station):
    pauses = 0
    for n in range(20):
        if (n + 1) % 5:
            with pytest.raises(WrongCode):
                await station.custody.pickup(f"{n:08d}")
        else:  # the fifth in a row pauses the keypad at once: wait it out
            with pytest.raises(KeypadPaused):
                await station.custody.pickup(f"{n:08d}")
            with pytest.raises(KeypadPaused):
                await station.custody.pickup("99999999")  # refused unseen while paused, not counted
            pauses += 1
            station.clock.advance(31)
        if n == 12:
            await station.stop()
            await station.start()
    assert pauses == 4
    with pytest.raises(KeypadPaused) as err:  # the hourly budget is spent
        await station.custody.pickup("12345678")
    assert err.value.seconds_left > 3000
    station.clock.advance(3601)
    with pytest.raises(WrongCode):
        await station.custody.pickup("12345678")


async def test_ten_failures_in_ten_minutes_raise_the_guessing_alarm(station):
    events = station.custody.subscribe()
    for n in range(10):
        with pytest.raises((WrongCode, KeypadPaused)):
            await station.custody.pickup(f"{n:08d}")
        if (n + 1) % 5 == 0:
            station.clock.advance(31)
    kinds = []
    while not events.empty():
        kinds.append(events.get_nowait().kind)
    assert kinds.count("alarm.code_guessing") <= 1
    rows = await station.db.read(lambda c: c.execute(
        "SELECT COUNT(*) FROM events WHERE kind = 'alarm_code_guessing'").fetchone()[0])
    assert rows == 1


async def test_qr_token_opens_the_door_and_is_single_use(station):
    courier = await station.make_courier()
    events = station.custody.subscribe()
    ticket, spec, code = await store(station, courier, events)
    token = token_from(station.sms)
    assert len(token) >= 4 + 26  # 128 bits in base32
    with pytest.raises(UnknownToken):
        await station.custody.pickup(token="PK1-" + "A" * 26)
    assert await station.custody.keypad_pause_left() == 0  # tokens are not counted as code guesses
    opened = await station.custody.pickup(token=token)
    assert opened.compartment == ticket.compartment
    await station.wait_event(events, "pickup.door_open")
    station.bank.take_parcel(spec.board, spec.channel)
    station.bank.close_by_hand(spec.board, spec.channel)
    await station.wait_event(events, "pickup.collected")
    with pytest.raises(UnknownToken):
        await station.custody.pickup(token=token)
    with pytest.raises(WrongCode):
        await station.custody.pickup(code)
    await sound(station)


async def test_the_sender_choosing_the_locker_counts_as_consent(station):
    courier = await station.make_courier()
    with pytest.raises(ConsentMissing):
        await station.custody.start_deposit(courier, tracking="SF1234567", phone=PHONE, size="S", consent=False)
    ticket = await station.custody.start_deposit(courier, tracking="SF1234567", phone=PHONE, size="S",
                                                 consent=False, locker_is_address=True)
    basis = await station.db.read(lambda c: c.execute("SELECT consent FROM parcels WHERE id = ?",
                                                      (ticket.parcel_id,)).fetchone()[0])
    assert basis == "locker_is_address"


async def test_refused_parcel_goes_back_to_its_courier(station):
    courier = await station.make_courier()
    events = station.custody.subscribe()
    ticket, spec, code = await store(station, courier, events)
    opened = await station.custody.pickup(code)
    with pytest.raises(FlowConflict):  # not before the door is seen open
        await station.custody.refuse(opened.parcel_id, "damaged")
    await station.wait_event(events, "pickup.door_open")
    await station.custody.refuse(opened.parcel_id, "damaged")
    station.bank.close_by_hand(spec.board, spec.channel)  # parcel put back
    refused = await station.wait_event(events, "pickup.refused")
    assert refused.detail == {"reason": "damaged"}
    assert await station.custody.parcel_state(ticket.parcel_id) == "refused"
    with pytest.raises(WrongCode):  # the code died with the refusal
        await station.custody.pickup(code)
    other = await station.make_courier(login="20000002")
    assert await station.custody.retrievals(other) == []
    with pytest.raises(NotAllowed):
        await station.custody.start_retrieval(other, ticket.parcel_id)
    listed = await station.custody.retrievals(courier)
    assert [(r["parcel_id"], r["reason"], r["refuse_reason"]) for r in listed] == [
        (ticket.parcel_id, "refused", "damaged")]
    pulses = station.bank.door(spec.board, spec.channel).pulses
    await station.custody.start_retrieval(courier, ticket.parcel_id)
    await station.wait_event(events, "retrieve.door_open")
    assert station.bank.door(spec.board, spec.channel).pulses == pulses + 1
    station.bank.take_parcel(spec.board, spec.channel)
    station.bank.close_by_hand(spec.board, spec.channel)
    await station.wait_event(events, "retrieve.returned")
    assert await station.custody.parcel_state(ticket.parcel_id) == "returned"
    kinds = await station.db.read(lambda c: [r[0] for r in c.execute("SELECT kind FROM events ORDER BY id")])
    assert kinds[-3:] == ["retrieval_started", "door_opened", "returned"]
    await sound(station)


async def test_refusing_but_taking_the_parcel_anyway_is_a_collection(station):
    courier = await station.make_courier()
    events = station.custody.subscribe()
    ticket, spec, code = await store(station, courier, events)
    await station.custody.pickup(code)
    await station.wait_event(events, "pickup.door_open")
    await station.custody.refuse(ticket.parcel_id, "late")
    station.bank.take_parcel(spec.board, spec.channel)
    station.bank.close_by_hand(spec.board, spec.channel)
    await station.wait_event(events, "pickup.collected")


def test_storage_fee_rules():
    s = CustodySettings(fee_per_day_fen=50, fee_cap_fen=300)
    assert storage_fee(s, 1000.0, 999.0) == 0
    assert storage_fee(s, 1000.0, 1000.0) == 0
    assert storage_fee(s, 1000.0, 1001.0) == 50
    assert storage_fee(s, 1000.0, 1000.0 + 86400 * 2 + 1) == 150
    assert storage_fee(s, 1000.0, 1000.0 + 86400 * 30) == 300
    assert storage_fee(CustodySettings(), 1000.0, 1e9) == 0


async def test_fee_after_the_free_period_is_shown_before_anything_opens(station):
    station.custody.settings = dataclasses.replace(station.settings, fee_per_day_fen=50, fee_cap_fen=300)
    courier = await station.make_courier()
    events = station.custody.subscribe()
    ticket, spec, code = await store(station, courier, events)
    assert "逾期每天0.50元" in station.sms.recent[-1]["text"]
    station.clock.advance(25 * 3600)
    pulses = station.bank.door(spec.board, spec.channel).pulses
    with pytest.raises(FeeDue) as err:
        await station.custody.pickup(code)
    assert err.value.fee_fen == 50
    assert station.bank.door(spec.board, spec.channel).pulses == pulses
    assert await station.custody.parcel_state(ticket.parcel_id) == "stored"


async def test_reminder_goes_out_once_before_the_free_period_ends(station):
    courier = await station.make_courier()
    events = station.custody.subscribe()
    await store(station, courier, events)
    station.custody.settings = dataclasses.replace(station.custody.settings, housekeeping_interval=0.05)
    await station.stop()
    await station.start()
    station.custody.settings = dataclasses.replace(station.custody.settings, housekeeping_interval=0.05)
    station.clock.advance(21 * 3600)  # 3 hours left of 24
    await station.wait_for(lambda: any(m["template"] == "reminder" for m in station.sms.recent), timeout=5)
    reminders = [m for m in station.sms.recent if m["template"] == "reminder"]
    assert len(reminders) == 1 and "取件码见之前的短信" in reminders[0]["text"]
    assert not re.search(r"\d{8}", reminders[0]["text"])


async def test_expired_parcels_show_in_the_couriers_retrieval_list(station):
    courier = await station.make_courier()
    events = station.custody.subscribe()
    ticket, _, _ = await store(station, courier, events)
    assert await station.custody.retrievals(courier) == []
    station.clock.advance(73 * 3600)
    listed = await station.custody.retrievals(courier)
    assert [(r["parcel_id"], r["reason"]) for r in listed] == [(ticket.parcel_id, "expired")]


async def test_technician_open_is_journaled_and_raises_no_alarm(station):
    events = station.custody.subscribe()
    await station.custody.technician_open("technician:wang", "A07", "door 7 sticks")
    await station.wait_event(events, "door.changed")
    station.bank.close_by_hand(0, 6)
    await station.wait_event(events, "technician.opened")
    rows = await station.db.read(lambda c: [tuple(r) for r in c.execute(
        "SELECT kind, actor FROM events WHERE kind LIKE '%technician%' OR kind LIKE 'door_opened%'")])
    assert ("technician_open", "technician:wang") in rows
    assert not any(k == "door_opened_uncommanded" for k, _ in rows)
    intent = await station.db.read(lambda c: tuple(c.execute(
        "SELECT purpose, actor, outcome FROM door_intents").fetchone()))
    assert intent == ("technician", "technician:wang", "opened")


async def test_a_door_left_open_raises_an_alarm_and_blocks_the_compartment(station):
    station.custody.settings = dataclasses.replace(station.settings, door_left_open_alarm=0.3)
    events = station.custody.subscribe()
    courier = await station.make_courier()
    ticket, spec = await deposit(station, courier)
    station.bank.put_parcel(spec.board, spec.channel)
    alarm = await station.wait_event(events, "alarm.door_left_open")
    assert alarm.compartment == ticket.compartment
    rows = await station.db.read(lambda c: c.execute(
        "SELECT COUNT(*) FROM events WHERE kind = 'alarm_door_left_open'").fetchone()[0])
    assert rows == 1


async def test_invariants_hold_after_the_flows_and_catch_a_broken_row(station):
    courier = await station.make_courier()
    events = station.custody.subscribe()
    await store(station, courier, events)
    await sound(station)
    await station.db.write(lambda c: c.execute("UPDATE compartments SET state = 'free' WHERE label = 'A01'"))
    problems = await station.db.read(invariants.check)
    assert problems == ["compartment A01 is free but holds parcel 1 (stored)"]
    assert await station.db.read(lambda c: invariants.check_pulses(c, {"A01": 1})) == []
    assert await station.db.read(lambda c: invariants.check_pulses(c, {"A01": 2})) == [
        "compartment A01: 2 pulses but 1 intents"]


async def test_open_all_is_a_confirmed_technician_action_door_by_door(station):
    from lockers.errors import InvalidInput
    from lockers.maintenance import open_all

    with pytest.raises(InvalidInput):
        await open_all(station.custody, technician="wang", reason="cleaning", confirmation="yes")
    assert all(d.pulses == 0 for d in station.wall.doors.values())
    results = await open_all(station.custody, technician="wang", reason="cleaning", confirmation="OPEN ALL")
    assert set(results.values()) == {"opened"} and len(results) == 32
    assert all(d.pulses == 1 for d in station.wall.doors.values())
    rows = await station.db.read(lambda c: c.execute(
        "SELECT COUNT(*) FROM events WHERE kind = 'technician_open' AND actor = 'technician:wang'").fetchone()[0])
    assert rows == 32
