from __future__ import annotations

import re
import sqlite3

import pytest

from lockers import journal
from lockers.errors import (
    ConsentMissing,
    DoorUnavailable,
    InvalidInput,
    KeypadPaused,
    LoginFailed,
    NoCompartmentFree,
    NotAllowed,
    WrongCode,
)

PHONE = "13812345678"


def code_from(sms) -> str:
    return re.search(r"取件码 (\d{8})", sms.recent[-1]["text"]).group(1)


async def deposit(station, courier, size="S", phone=PHONE, tracking="SF1234567890123"):
    ticket = await station.custody.start_deposit(courier, tracking=tracking, phone=phone, size=size, consent=True)
    spec = station.spec(ticket.compartment)
    await station.wait_for(lambda: station.custody.doors.reading(spec.address).door.value == "open")
    return ticket, spec


async def store(station, courier, events, **deposit_args):
    """Deposit, put the parcel in, close the door, wait for the notice; returns ticket, spec, code."""
    ticket, spec = await deposit(station, courier, **deposit_args)
    station.bank.put_parcel(spec.board, spec.channel)
    station.bank.close_by_hand(spec.board, spec.channel)
    await station.wait_event(events, "notice.sent")
    return ticket, spec, code_from(station.sms)


async def test_deposit_then_pickup_end_to_end(station):
    courier = await station.make_courier()
    events = station.custody.subscribe()
    ticket, spec = await deposit(station, courier, size="M")
    assert ticket.compartment == "A05"  # smallest free compartment that fits M
    assert station.bank.door(spec.board, spec.channel).pulses == 1
    await station.wait_event(events, "deposit.door_open")
    station.bank.put_parcel(spec.board, spec.channel)
    station.bank.close_by_hand(spec.board, spec.channel)
    await station.wait_event(events, "deposit.stored")
    await station.wait_event(events, "notice.sent")
    message = station.sms.recent[-1]
    assert message["to"] == "138****5678"
    assert "A05" in message["text"] and "免费保管" in message["text"]
    code = code_from(station.sms)

    pickup = await station.custody.pickup(code)
    assert pickup.compartment == "A05"
    await station.wait_event(events, "pickup.door_open")
    assert station.bank.door(spec.board, spec.channel).pulses == 2
    station.bank.take_parcel(spec.board, spec.channel)
    station.bank.close_by_hand(spec.board, spec.channel)
    await station.wait_event(events, "pickup.collected")
    assert await station.custody.parcel_state(pickup.parcel_id) == "collected"
    with pytest.raises(WrongCode):  # single use
        await station.custody.pickup(code)
    # the compartment is free again and gets the next M parcel
    again, _ = await deposit(station, courier, size="M", tracking="SF999988887777")
    assert again.compartment == "A05"


async def test_deposit_refused_without_consent_or_with_bad_input(station):
    courier = await station.make_courier()
    with pytest.raises(ConsentMissing):
        await station.custody.start_deposit(courier, tracking="SF1234567", phone=PHONE, size="S", consent=False)
    with pytest.raises(InvalidInput) as err:
        await station.custody.start_deposit(courier, tracking="SF1234567", phone="12345", size="S", consent=True)
    assert err.value.field == "phone"
    with pytest.raises(InvalidInput):
        await station.custody.start_deposit(courier, tracking="x", phone=PHONE, size="S", consent=True)
    assert all(d.pulses == 0 for d in station.wall.doors.values())


async def test_no_compartment_of_that_size(station):
    courier = await station.make_courier()
    for n in range(4):  # 2 XL per board, 2 boards
        t, spec = await deposit(station, courier, size="XL", tracking=f"YT10000000{n}")
        assert station.spec(t.compartment).size == "XL"
    with pytest.raises(NoCompartmentFree):
        await station.custody.start_deposit(courier, tracking="YT200000000", phone=PHONE, size="XL", consent=True)


async def test_door_closed_empty_stores_nothing(station):
    courier = await station.make_courier()
    events = station.custody.subscribe()
    ticket, spec = await deposit(station, courier)
    station.bank.close_by_hand(spec.board, spec.channel)
    event = await station.wait_event(events, "deposit.cancelled")
    assert event.detail["reason"] == "closed_empty"
    assert await station.custody.parcel_state(ticket.parcel_id) == "cancelled"
    assert station.sms.recent == type(station.sms.recent)(maxlen=station.sms.recent.maxlen)
    rows = await station.custody.compartments()
    assert next(r for r in rows if r["label"] == ticket.compartment)["state"] == "free"


async def test_courier_cancels_and_other_courier_cannot(station):
    courier = await station.make_courier()
    other = await station.make_courier(login="20000002")
    ticket, spec = await deposit(station, courier)
    with pytest.raises(NotAllowed):
        await station.custody.cancel_deposit(other, ticket.parcel_id)
    assert await station.custody.cancel_deposit(courier, ticket.parcel_id) == ticket.compartment
    assert await station.custody.parcel_state(ticket.parcel_id) == "cancelled"
    # the door is still open: the compartment is not handed out again until it reads closed
    nxt = await station.custody.start_deposit(courier, tracking="SF5555555555", phone=PHONE, size="S", consent=True)
    assert nxt.compartment != ticket.compartment


async def test_jammed_door_cancels_deposit_and_flags_compartment(station):
    courier = await station.make_courier()
    events = station.custody.subscribe()
    station.bank.door(0, 0).jammed = True
    ticket = await station.custody.start_deposit(courier, tracking="SF1234567", phone=PHONE, size="S", consent=True)
    event = await station.wait_event(events, "deposit.cancelled")
    assert event.detail["reason"] == "door_not_opened"
    rows = {r["label"]: r for r in await station.custody.compartments()}
    assert rows[ticket.compartment]["state"] == "check_required"


async def test_lock_bus_refusing_the_unlock_is_reported_and_frees_the_compartment(station):
    courier = await station.make_courier()
    station.wall.refuse_unlocks = True
    with pytest.raises(DoorUnavailable):
        await station.custody.start_deposit(courier, tracking="SF1234567", phone=PHONE, size="S", consent=True)
    rows = {r["label"]: r for r in await station.custody.compartments()}
    assert rows["A01"]["state"] == "free" and rows["A01"]["parcel"] is None


async def test_wrong_codes_pause_the_keypad_across_a_restart(station):
    for left in (4, 3, 2, 1):
        with pytest.raises(WrongCode) as err:
            await station.custody.pickup("00000000")
        assert err.value.attempts_left == left
    with pytest.raises(KeypadPaused):
        await station.custody.pickup("00000001")
    await station.stop()
    await station.start()
    with pytest.raises(KeypadPaused) as err:
        await station.custody.pickup("00000002")
    assert 0 < err.value.seconds_left <= 30


async def test_parcel_left_in_the_locker_stays_with_a_valid_code(station):
    courier = await station.make_courier()
    events = station.custody.subscribe()
    _, spec, code = await store(station, courier, events)
    ticket = await station.custody.pickup(code)
    await station.wait_event(events, "pickup.door_open")
    station.bank.close_by_hand(spec.board, spec.channel)  # closed with the parcel still inside
    await station.wait_event(events, "pickup.not_taken")
    assert await station.custody.parcel_state(ticket.parcel_id) == "stored"
    assert (await station.custody.pickup(code)).parcel_id == ticket.parcel_id


async def test_uncommanded_open_of_an_occupied_compartment_raises_an_alarm(station):
    courier = await station.make_courier()
    events = station.custody.subscribe()
    ticket, spec, _ = await store(station, courier, events)
    station.custody._last_unlock.clear()  # pretend the last command was long ago
    station.bank.open_by_hand(spec.board, spec.channel)
    alarm = await station.wait_event(events, "alarm.uncommanded_open")
    assert alarm.compartment == ticket.compartment
    rows = {r["label"]: r for r in await station.custody.compartments()}
    assert rows[ticket.compartment]["state"] == "check_required"


async def test_restart_during_deposit_cancels_it_and_never_pulses(station):
    courier = await station.make_courier()
    ticket, spec = await deposit(station, courier)
    await station.stop()  # the service goes away with the door open and the parcel half in
    station.bank.put_parcel(spec.board, spec.channel)
    pulses_before = sum(d.pulses for d in station.wall.doors.values())
    await station.start()
    assert sum(d.pulses for d in station.wall.doors.values()) == pulses_before
    assert await station.custody.parcel_state(ticket.parcel_id) == "cancelled"
    rows = {r["label"]: r for r in await station.custody.compartments()}
    assert rows[ticket.compartment]["state"] == "check_required"


async def test_notice_lost_in_a_crash_is_sent_again_with_a_fresh_code(station):
    courier = await station.make_courier()
    events = station.custody.subscribe()
    _, spec, old = await store(station, courier, events)
    # as if the process died before it could record that the gateway took the message
    await station.db.write(lambda c: c.execute("UPDATE notices SET status = 'pending'"))
    await station.stop()
    station.sms.recent.clear()
    await station.start()
    await station.wait_for(lambda: len(station.sms.recent) == 1)
    new = code_from(station.sms)
    if old != new:  # equal only with probability 1e-8
        with pytest.raises(WrongCode):
            await station.custody.pickup(old)
    assert (await station.custody.pickup(new)).compartment == "A01"


async def test_courier_login_and_lockout(station):
    await station.make_courier()
    assert (await station.custody.login("10000001", "24681357")).login == "10000001"
    with pytest.raises(LoginFailed):
        await station.custody.login("99999999", "24681357")
    for _ in range(10):
        with pytest.raises(LoginFailed):
            await station.custody.login("10000001", "00000000")
    from lockers.errors import AccountLocked
    with pytest.raises(AccountLocked):
        await station.custody.login("10000001", "24681357")


async def test_phone_numbers_never_in_plaintext_on_disk(station, tmp_path):
    courier = await station.make_courier()
    phones = [f"139{n:08d}" for n in (31415926, 27182818, 14142135)]
    events = station.custody.subscribe()
    for n, phone in enumerate(phones):
        await store(station, courier, events, phone=phone, tracking=f"JT000000{n}")
    await station.stop()
    blobs = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for phone in phones:
        for form in (phone.encode(), phone.encode("utf-16-le"), phone[3:].encode()):
            assert form not in blobs
    await station.start()


async def test_journal_is_append_only_and_verifiable(station):
    courier = await station.make_courier()
    await deposit(station, courier)
    result = await station.db.read(journal.verify)
    assert result.ok and result.rows >= 3
    with pytest.raises(sqlite3.DatabaseError):
        await station.db.write(lambda c: c.execute("UPDATE events SET kind = 'x' WHERE id = 1"))
    with pytest.raises(sqlite3.DatabaseError):
        await station.db.write(lambda c: c.execute("DELETE FROM events WHERE id = 2"))

    def tamper(conn):
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("UPDATE events SET detail = '{}' WHERE id = 2")

    await station.db.write(tamper)
    broken = await station.db.read(journal.verify)
    assert not broken.ok and broken.first_bad_id == 2


async def test_custody_is_committed_before_the_door_moves(station, tmp_path):
    """At the moment the unlock goes out, another connection to the file already sees the
    parcel, the reserved compartment and the door intent."""
    seen = []
    real_unlock = station.bank._unlock

    async def unlock_and_look(board, channel):
        other = sqlite3.connect(tmp_path / "custody.sqlite3")
        try:
            seen.append(other.execute(
                "SELECT p.state, c.state, i.purpose FROM parcels p JOIN compartments c ON c.id = p.compartment_id"
                " JOIN door_intents i ON i.parcel_id = p.id ORDER BY p.id DESC LIMIT 1").fetchone())
        finally:
            other.close()
        return await real_unlock(board, channel)

    station.bank._unlock = unlock_and_look
    courier = await station.make_courier()
    await station.custody.start_deposit(courier, tracking="SF1234567", phone=PHONE, size="S", consent=True)
    assert seen == [("depositing", "reserved", "deposit")]


async def test_door_never_closed_stores_nothing_and_frees_the_compartment(station):
    courier = await station.make_courier()
    events = station.custody.subscribe()
    ticket, spec = await deposit(station, courier)
    station.bank.put_parcel(spec.board, spec.channel)  # parcel in, but the door is left open
    event = await station.wait_event(events, "deposit.cancelled", timeout=6)
    assert event.detail["reason"] == "door_not_closed"
    assert await station.custody.parcel_state(ticket.parcel_id) == "cancelled"
    assert not station.sms.recent
    rows = {r["label"]: r for r in await station.custody.compartments()}
    assert rows[ticket.compartment]["state"] == "free" and rows[ticket.compartment]["door"] == "open"
    # not handed out again while its door is open or something is inside
    nxt = await station.custody.start_deposit(courier, tracking="SF7654321", phone=PHONE, size="S", consent=True)
    assert nxt.compartment != ticket.compartment


async def test_wrong_code_streak_survives_a_restart(station):
    for _ in range(3):
        with pytest.raises(WrongCode):
            await station.custody.pickup("11111111")
    await station.stop()
    await station.start()
    with pytest.raises(WrongCode) as err:
        await station.custody.pickup("22222222")
    assert err.value.attempts_left == 1
    with pytest.raises(KeypadPaused):
        await station.custody.pickup("33333333")


async def test_a_board_refusing_the_unlock_ends_the_flow_at_once(station):
    courier = await station.make_courier()
    station.wall.boards_say_no = True
    with pytest.raises(DoorUnavailable):
        await station.custody.start_deposit(courier, tracking="SF1234567", phone=PHONE, size="S", consent=True)
    rows = {r["label"]: r for r in await station.custody.compartments()}
    assert rows["A01"]["parcel"] is None and rows["A01"]["state"] == "free"
    kinds = await station.db.read(lambda c: [r[0] for r in c.execute("SELECT kind FROM events")])
    assert "unlock_refused_by_board" in kinds


async def test_a_technician_clears_a_checked_compartment_back_into_service(station):
    from lockers.errors import FlowConflict

    courier = await station.make_courier()
    ticket, spec = await deposit(station, courier)
    await station.stop()  # interrupted with the door open: the compartment needs a check
    await station.start()
    with pytest.raises(FlowConflict):  # not while its door is open
        await station.custody.clear_check("technician:li", ticket.compartment, "looked inside")
    station.bank.close_by_hand(spec.board, spec.channel)
    await station.wait_for(lambda: station.custody.door_of(ticket.compartment) == "closed")
    assert await station.custody.clear_check("technician:li", ticket.compartment, "empty, door fine") == "free"
    with pytest.raises(FlowConflict):  # only once
        await station.custody.clear_check("technician:li", ticket.compartment, "again")
    again = await station.custody.start_deposit(courier, tracking="SF7777777", phone=PHONE, size="S", consent=True)
    assert again.compartment == ticket.compartment
    kinds = await station.db.read(lambda c: [r[0] for r in c.execute("SELECT kind FROM events")])
    assert kinds.index("deposit_interrupted") < kinds.index("check_cleared")


def test_the_key_file_is_never_left_half_written(tmp_path, monkeypatch):
    from lockers.keys import DeviceKeys

    path = tmp_path / "device.key"
    real_replace = __import__("os").replace
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(OSError("power cut")))
    with pytest.raises(OSError):
        DeviceKeys.load_or_create(path)
    assert not path.exists()  # no empty or partial key file under the real name
    monkeypatch.setattr("os.replace", real_replace)
    keys = DeviceKeys.load_or_create(path)
    assert DeviceKeys.load_or_create(path) == keys and oct(path.stat().st_mode & 0o777) == "0o600"
