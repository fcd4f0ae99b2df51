"""Posting a parcel at the kiosk, end to end in the domain layer.

The real PostingDesk runs on a Station's custody with the real hal drivers talking to the device
simulators over ptys (``tests.lockers.posting_fixtures``); only the surveillance check is faked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import re

import pytest
import zxingcpp

from hal.codes import s10_valid
from hal.idcard import mask_name
from lockers import accounts, invariants
from lockers.errors import FlowConflict, InvalidInput, NotAllowed
from lockers.posting import PayAtCounter, PaymentOutcome, PostingRefused, PostingUnavailable
from tests.lockers.posting_fixtures import RECIPIENT, SENDER_PHONE, Kiosk, until, wrong_check_character

PERSONAL_COLUMNS = ("id_enc", "sender_enc", "recipient_enc")


@pytest.fixture
async def kiosk(tmp_path):
    k = Kiosk(tmp_path)
    await k.start()
    yield k
    await k.stop()


def detail(event) -> dict:
    return json.loads(event["detail"])


def s10_check(serial8: str) -> int:
    """UPU S10 check digit, written out from the standard (weights 8 6 4 2 3 5 9 7; 11 - sum mod 11,
    10 -> 0, 11 -> 5), independently of hal.codes."""
    total = sum(int(d) * w for d, w in zip(serial8, (8, 6, 4, 2, 3, 5, 9, 7)))
    return {10: 0, 11: 5}.get(11 - total % 11, 11 - total % 11)


async def parcel_of(kiosk: Kiosk, posting_id: int):
    return await kiosk.db.read(lambda c: c.execute("SELECT * FROM parcels WHERE posting_id = ?",
                                                   (posting_id,)).fetchone())


async def total_pulses(kiosk: Kiosk) -> int:
    return sum(d.pulses for d in kiosk.station.wall.doors.values())


# ------------------------------------------------------------------ T-E4: notice before the card


async def test_the_reader_is_asked_for_a_card_only_after_the_notice_is_agreed(kiosk):
    desk = kiosk.desk
    kiosk.idcard.present_card(kiosk.card())  # the card already lies on the pad
    assert await desk.availability() == (True, None)
    with pytest.raises(InvalidInput) as err:
        await desk.begin(agreed=False)
    assert err.value.field == "agreed"
    await asyncio.sleep(0.3)
    assert kiosk.spy.calls == 0 and desk.read_calls == 0
    assert kiosk.idcard.sim.state.commands == []  # not one byte reached the reader
    assert await kiosk.events("posting_notice_agreed") == []
    assert await kiosk.db.read(lambda c: c.execute("SELECT COUNT(*) FROM postings").fetchone()[0]) == 0

    view = await desk.begin(agreed=True)
    await kiosk.wait_step("recipient")
    agreed = await kiosk.events("posting_notice_agreed")
    assert len(agreed) == 1 and detail(agreed[0])["posting_id"] == view["posting_id"]
    assert kiosk.spy.calls >= 1 and desk.read_calls == kiosk.spy.calls
    # at every read, the agreement was already committed to the journal
    assert all(agreed_id == agreed[0]["id"] for agreed_id, _ in kiosk.spy.seen)
    assert kiosk.spy.seen[0][1] == agreed[0]["id"]  # nothing else journaled in between
    assert kiosk.idcard.sim.state.commands[0] == "find"
    identified = await kiosk.events("posting_identified")
    assert agreed[0]["id"] < identified[0]["id"]
    assert kiosk.reader.take_photo() is None  # the photo was dropped by the flow, unread


async def test_no_card_within_the_time_cancels_the_posting(kiosk):
    desk = await kiosk.new_desk(settings=dataclasses.replace(kiosk.settings, card_timeout=0.5))
    kiosk.idcard.remove_card()
    posting_id = (await desk.begin(agreed=True))["posting_id"]
    await kiosk.wait_state(posting_id, "cancelled")
    assert (await kiosk.row(posting_id))["end_reason"] == "no_card"
    assert desk.live is None and desk.read_calls >= 1


# ------------------------------------------------------------------ R4 / T-H5: surveillance gate


async def test_camera_down_refuses_posting_but_not_deposit_and_pickup(kiosk):
    desk, custody, station = kiosk.desk, kiosk.station.custody, kiosk.station
    kiosk.camera.up = False
    kiosk.idcard.present_card(kiosk.card())
    assert await desk.availability() == (False, "camera_down")
    with pytest.raises(PostingUnavailable) as err:
        await desk.begin(agreed=True)
    assert err.value.reason == "camera_down"
    refused = await kiosk.events("posting_refused_unavailable")
    assert len(refused) == 1 and detail(refused[0])["reason"] == "camera_down"
    assert kiosk.spy.calls == 0 and kiosk.idcard.sim.state.commands == []
    assert await kiosk.events("posting_notice_agreed") == []

    # a camera check that itself fails, and no camera check at all, are a camera that is down
    async def broken() -> tuple[bool, str]:
        raise OSError("no such device")

    assert await kiosk.make_desk(surveillance=broken).availability() == (False, "camera_down")
    assert await kiosk.make_desk(surveillance=None).availability() == (False, "camera_down")

    # while it is down, a courier deposits and a resident picks up as usual
    courier = await station.make_courier()
    events = custody.subscribe()
    ticket = await custody.start_deposit(courier, tracking="SF1234567890123", phone="13812345678", size="S",
                                         consent=True)
    spec = station.spec(ticket.compartment)
    await kiosk.door_reads(ticket.compartment, "open")
    station.bank.put_parcel(spec.board, spec.channel)
    station.bank.close_by_hand(spec.board, spec.channel)
    await kiosk.wait_event(events, "notice.sent")
    code = re.search(r"取件码 (\d{8})", station.sms.recent[-1]["text"]).group(1)
    await custody.pickup(code)
    await kiosk.wait_event(events, "pickup.door_open")
    station.bank.take_parcel(spec.board, spec.channel)
    station.bank.close_by_hand(spec.board, spec.channel)
    await kiosk.wait_event(events, "pickup.collected")
    assert await custody.parcel_state(ticket.parcel_id) == "collected"

    kiosk.camera.up = True  # and posting is possible again once the camera is back
    await desk.begin(agreed=True)
    await kiosk.wait_step("recipient")


# ------------------------------------------------------------------ the ID card


@pytest.mark.parametrize("problem", ["expired", "check_character"])
async def test_an_invalid_card_refuses_the_posting_and_keeps_nothing(kiosk, problem):
    card = kiosk.card(serial=44)
    if problem == "expired":
        card = dataclasses.replace(card, valid_from=dt.date(2000, 1, 1), valid_to=dt.date(2020, 1, 1))
    else:
        card = dataclasses.replace(card, id_number=wrong_check_character(card.id_number))
    kiosk.idcard.present_card(card)
    view = await kiosk.desk.begin(agreed=True)
    await kiosk.wait_state(view["posting_id"], "refused")
    row = await kiosk.row(view["posting_id"])
    assert row["end_reason"] == f"id_{problem}"
    for column in (*PERSONAL_COLUMNS, "id_hmac", "id_masked", "sender_masked"):
        assert row[column] is None, column
    assert kiosk.desk.live is None
    assert kiosk.desk.last_refusal == {"step": "refused", "reason": f"id_{problem}", "prohibited": None}
    refused = await kiosk.events("posting_refused")
    assert [detail(e)["reason"] for e in refused] == [f"id_{problem}"]
    assert not any(card.id_number in e["detail"] for e in await kiosk.events())


@pytest.mark.parametrize(("age", "elderly"), [(72, True), (60, True), (59, False)])
async def test_age_decides_large_print_and_the_birth_date_is_not_kept(kiosk, age, elderly):
    card = kiosk.card(age=age, serial=age)
    posting_id = await kiosk.identify(card)
    view = await kiosk.desk.view()
    assert view["elderly"] is elderly
    row = await kiosk.row(posting_id)
    assert not [k for k in row.keys() if "birth" in k or k == "age"]
    forms = (card.birth.isoformat(), f"{card.birth:%Y%m%d}", f"{card.birth:%Y年%m月%d日}",
             f"{card.birth.year}年{card.birth.month}月{card.birth.day}日")
    stored = [str(v) for v in row] + [e["detail"] for e in await kiosk.events()] + [json.dumps(view, default=str)]
    assert not [f for f in forms for text in stored if f in text]


async def test_a_card_taken_away_mid_read_is_asked_for_again(kiosk):
    desk = kiosk.desk
    messages: list[str | None] = []
    desk.subscribe(lambda view: messages.append(view.get("message")))
    card = kiosk.card(serial=5)
    kiosk.idcard.sim.remove_card_mid_read()
    kiosk.idcard.present_card(card)
    await desk.begin(agreed=True)
    await until(lambda: desk.view_sync()["message"] == "card_unreadable", what="card_unreadable shown")
    await asyncio.sleep(0.3)
    view = await desk.view()
    assert view["step"] == "card" and view["state"] == "reading_card" and view["id_masked"] is None
    kiosk.idcard.present_card(card)  # the resident puts it back
    view = await kiosk.wait_step("recipient")
    assert view["id_masked"].endswith(card.id_number[-4:])
    await until(lambda: desk.view_sync()["message"] is None, timeout=1.0, what="message cleared")
    assert "card_unreadable" in messages


# ------------------------------------------------------------------ personal data


async def test_the_id_number_is_never_stored_or_shown_in_plaintext(kiosk):
    desk, keys = kiosk.desk, kiosk.keys
    card = kiosk.card(serial=321, name="周晓明")
    number = card.id_number
    posting_id = await kiosk.identify(card)
    shown = [await desk.view()]
    shown.append(await kiosk.address())
    shown.append(await kiosk.priced())
    _, label = await kiosk.printed()
    shown.append(await desk.view())
    await kiosk.put_in(posting_id, label)

    row = await kiosk.row(posting_id)
    assert row["id_hmac"] == keys.mac("id_number", number)
    assert keys.decrypt("id_number", row["id_enc"]) == number
    masked = row["id_masked"]
    assert masked.endswith(number[-4:]) and number[:-4] not in masked
    for view in shown:
        assert view["id_masked"] == masked
        assert number not in json.dumps(view, ensure_ascii=False, default=str)
    identified = await kiosk.events("posting_identified")
    assert detail(identified[0])["id_number"] == masked
    assert not [e for e in await kiosk.events() if number[-8:] in e["detail"]]

    path = kiosk.db.path
    files = [p for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")) if p.exists()]
    blob = b"".join(p.read_bytes() for p in files)
    assert masked.encode() in blob  # the files are read: the masked form is there
    spaced = f"{number[:6]} {number[6:14]} {number[14:]}"
    for form in (number, number.lower(), spaced, spaced.lower(), " ".join(number), number[:17]):
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert form.encode(encoding) not in blob, (form == number, encoding)
    # nor the holder's name, address or the phones, which are kept only encrypted or masked
    for secret in (card.name, card.address, SENDER_PHONE, RECIPIENT["phone"], RECIPIENT["street"]):
        assert secret.encode() not in blob


# ------------------------------------------------------------------ the recipient


async def test_recipient_fields_are_checked(kiosk):
    desk = kiosk.desk
    posting_id = await kiosk.identify()
    bad = [({"name": " "}, "recipient_name"), ({"phone": "12345"}, "recipient_phone"),
           ({"province": "台湾省", "city": "台北市", "district": "大安区"}, "recipient_address"),
           ({"province": "东京都", "city": "新宿区", "district": ""}, "recipient_address"),
           ({"street": ""}, "recipient_address"), ({"sender_phone": None}, "sender_phone"),
           ({"sender_phone": "1390000"}, "sender_phone")]
    for fields, field in bad:
        with pytest.raises(InvalidInput) as err:
            await kiosk.address(**fields)
        assert err.value.field == field, fields
        assert "12345" not in str(err.value) and "1390000" not in str(err.value)
    assert (await kiosk.row(posting_id))["recipient_enc"] is None

    view = await kiosk.address(phone="0571-88886666", province="浙江省", city="杭州市", district="西湖区",
                               street="文三路100号")
    assert view["step"] == "item"
    assert view["recipient"] == {"name": "李*", "phone": "0571-****6666", "place": "浙江省杭州市西湖区"}
    row = await kiosk.row(posting_id)
    person = json.loads(kiosk.keys.decrypt("recipient", row["recipient_enc"]))
    assert person["phone"] == "0571-88886666" and row["dest_province"] == "浙江省"
    assert "88886666" not in row["recipient_masked"]
    await desk.cancel()


async def test_a_returning_resident_sees_their_recent_recipients_and_no_one_else_does(kiosk):
    desk = kiosk.desk
    card = kiosk.card(serial=11)
    first, _ = await kiosk.post(card, name="王五", phone="13712345678")

    second = await kiosk.identify(card)
    recent = await desk.recent_recipients()
    assert recent == [{"from_posting": first, "name": mask_name("王五"), "phone": "137****5678",
                       "place": "北京市北京市海淀区"}]
    view = await desk.set_recipient(name="", phone="", province="", city="", district="", street="",
                                    from_posting=first)  # and no sender phone: it is remembered
    assert view["step"] == "item" and view["recipient"]["phone"] == "137****5678"
    rows = [await kiosk.row(p) for p in (first, second)]
    people = [json.loads(kiosk.keys.decrypt("recipient", r["recipient_enc"])) for r in rows]
    assert people[0] == people[1] and people[1]["name"] == "王五"
    sender = json.loads(kiosk.keys.decrypt("sender", rows[1]["sender_enc"]))
    assert sender["phone"] == SENDER_PHONE
    await desk.cancel()

    await kiosk.identify(kiosk.card(serial=12))  # someone else
    assert await desk.recent_recipients() == []
    with pytest.raises(InvalidInput) as err:
        await desk.set_recipient(name="", phone="", province="", city="", district="", street="",
                                 sender_phone=SENDER_PHONE, from_posting=first)
    assert err.value.field == "from_posting"
    with pytest.raises(InvalidInput) as err:  # nor is the first resident's phone theirs
        await kiosk.address(sender_phone=None)
    assert err.value.field == "sender_phone"


# ------------------------------------------------------------------ the item


@pytest.mark.parametrize(("category", "reason", "prohibited"), [
    ("fireworks", "item_prohibited", "explosives"),
    ("lithium_batteries", "item_needs_counter_inspection", None),
])
async def test_an_item_that_may_not_be_posted_here_ends_the_posting(kiosk, category, reason, prohibited):
    desk = kiosk.desk
    posting_id = await kiosk.identify()
    await kiosk.address()
    with pytest.raises(PostingRefused):
        await desk.set_item(category=category, quantity=1, declared=True)
    row = await kiosk.row(posting_id)
    assert row["state"] == "refused" and row["end_reason"] == reason
    assert all(row[c] is None for c in PERSONAL_COLUMNS)
    refused = await kiosk.events("posting_refused")
    assert [(detail(e)["reason"], detail(e).get("prohibited")) for e in refused] == [(reason, prohibited)]
    assert desk.live is None and desk.last_refusal["prohibited"] == prohibited
    assert kiosk.scale_sim.sim.received == b""  # nothing weighed


async def test_the_declaration_is_required(kiosk):
    desk = kiosk.desk
    posting_id = await kiosk.identify()
    await kiosk.address()
    with pytest.raises(InvalidInput) as err:
        await desk.set_item(category="books", quantity=1, declared=False)
    assert err.value.field == "declaration_missing"
    row = await kiosk.row(posting_id)
    assert row["state"] == "drafting" and row["category"] is None
    assert (await desk.view())["step"] == "item"


# ------------------------------------------------------------------ weighing and the price


async def test_only_a_stable_weight_is_priced_and_nothing_is_paid_before_confirm(kiosk):
    desk = kiosk.desk
    posting_id = await kiosk.identify()
    await kiosk.address()
    kiosk.scale_sim.sim.put_weight(1234)
    kiosk.scale_sim.sim.hold_unstable(True)  # someone leans on the platter
    await desk.set_item(category="books", quantity=1, declared=True)
    await asyncio.sleep(2.0)
    view = await desk.view()
    assert view["step"] == "weigh" and view["weight_g"] is None and view["price_fen"] is None
    kiosk.scale_sim.sim.hold_unstable(False)
    view = await kiosk.wait_step("price")

    quote = kiosk.settings.tariff.quote(1234, RECIPIENT["province"])
    assert (view["weight_g"], view["zone"], view["price_fen"]) == (1234, quote.zone, quote.price_fen)
    promise = kiosk.settings.schedule.promise(dt.datetime.fromtimestamp(kiosk.station.clock(), dt.timezone.utc))
    assert view["promise"]["next_collection"] == promise.next_collection.isoformat(timespec="minutes")
    assert view["leaves_at"] == promise.next_collection.timestamp()
    row = await kiosk.row(posting_id)
    assert row["state"] == "priced"
    assert (row["payment_state"], row["payment_method"], row["paid_at"], row["waybill"]) == (None,) * 4
    assert await kiosk.events("posting_paid") == []
    assert kiosk.printer_sim.sim.labels == []


# ------------------------------------------------------------------ paying, the waybill, the label


async def test_confirm_pays_at_the_counter_draws_an_s10_waybill_and_prints_it(kiosk):
    desk = kiosk.desk
    waybills = []
    for n in range(2):
        posting_id = await kiosk.identify(kiosk.card(serial=100 + n))
        await kiosk.address()
        await kiosk.priced()
        view = await desk.confirm()
        assert view["state"] == "paid" and view["payment"] == "due_at_counter"
        await kiosk.wait_state(posting_id, "printed")
        await until(lambda: desk.live is not None and desk.live.ticket is not None, what="drop-off door")
        label = desk.live.ticket.compartment
        await kiosk.door_reads(label, "open")
        await kiosk.put_in(posting_id, label)
        row = await kiosk.row(posting_id)
        waybill = row["waybill"]
        waybills.append(waybill)
        assert row["payment_method"] == "counter" and row["payment_state"] == "due_at_counter"
        paid = [e for e in await kiosk.events("posting_paid") if detail(e)["posting_id"] == posting_id]
        printed = [e for e in await kiosk.events("label_printed") if detail(e)["posting_id"] == posting_id]
        assert paid[0]["id"] < printed[0]["id"] and detail(paid[0])["tracking"] == waybill

        assert len(kiosk.printer_sim.sim.labels) == n + 1
        codes = {(r.format, r.text) for r in zxingcpp.read_barcodes(kiosk.printer_sim.sim.labels[-1].image)}
        assert (zxingcpp.BarcodeFormat.Code128, waybill) in codes
        assert (zxingcpp.BarcodeFormat.QRCode, kiosk.settings.tracking_url.format(waybill=waybill)) in codes

    for waybill in waybills:
        assert s10_valid(waybill) and waybill[:2] == "CP" and waybill[-2:] == "CN"
        assert int(waybill[10]) == s10_check(waybill[2:10])
    serials = [int(w[2:10]) for w in waybills]
    assert serials == [kiosk.settings.serial_first, kiosk.settings.serial_first + 1]


class Declined:
    method = "card"

    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []

    async def pay(self, posting_id: int, amount_fen: int) -> PaymentOutcome:
        self.asked.append((posting_id, amount_fen))
        return PaymentOutcome("failed", self.method, reason="declined")


async def test_a_failed_payment_leaves_the_price_and_draws_no_waybill(kiosk):
    desk = kiosk.desk
    desk.payment = declined = Declined()
    posting_id = await kiosk.identify()
    await kiosk.address()
    priced = await kiosk.priced()
    view = await desk.confirm()
    assert declined.asked == [(posting_id, priced["price_fen"])]
    assert view["state"] == "priced" and view["message"] == "payment_failed"
    assert view["waybill"] is None and view["payment"] is None
    failed = await kiosk.events("posting_payment_failed")
    assert [detail(e)["reason"] for e in failed] == ["declined"]
    await asyncio.sleep(0.3)
    assert kiosk.printer_sim.sim.labels == [] and await total_pulses(kiosk) == 0

    desk.payment = PayAtCounter()  # the resident pays at the counter instead: no serial was lost
    await desk.confirm()
    await kiosk.wait_state(posting_id, "printed")
    assert int((await kiosk.row(posting_id))["waybill"][2:10]) == kiosk.settings.serial_first


# ------------------------------------------------------------------ the printer and the drop-off door


async def test_paper_out_waits_then_prints_once_and_opens_the_drop_off_door(kiosk):
    desk, printer_sim = kiosk.desk, kiosk.printer_sim.sim
    printer_sim.set(paper_out=True)
    posting_id = await kiosk.identify()
    await kiosk.address()
    await kiosk.priced()
    await desk.confirm()
    await until(lambda: desk.view_sync()["message"] == "printer_paper_out", what="paper out shown")
    await asyncio.sleep(0.5)
    assert await kiosk.state(posting_id) == "paid"
    assert printer_sim.labels == [] and printer_sim.state.lost_labels == 0
    assert desk.live.ticket is None and await total_pulses(kiosk) == 0
    not_ready = await kiosk.events("label_printer_not_ready")
    assert len(not_ready) == 1 and detail(not_ready[0])["paper_out"] is True

    printer_sim.set(paper_out=False)  # staff load a roll
    await kiosk.wait_state(posting_id, "printed")
    await until(lambda: desk.live is not None and desk.live.ticket is not None, what="drop-off door")
    label = desk.live.ticket.compartment
    await kiosk.door_reads(label, "open")
    assert desk.view_sync()["message"] is None and desk.view_sync()["compartment"] == label
    assert len(printer_sim.labels) == 1 and await total_pulses(kiosk) == 1

    await kiosk.put_in(posting_id, label)
    parcel = await parcel_of(kiosk, posting_id)
    waybill = (await kiosk.row(posting_id))["waybill"]
    assert parcel["state"] == "stored" and parcel["tracking_no"] == waybill
    assert parcel["code_hmac"] is None and parcel["token_hmac"] is None and parcel["courier_id"] is None
    assert parcel["consent"] == "sender_posted"
    assert await kiosk.db.read(invariants.check) == []
    await asyncio.sleep(0.3)
    assert len(printer_sim.labels) == 1  # never printed twice


async def test_a_drop_off_door_closed_empty_is_offered_again(kiosk):
    desk = kiosk.desk
    posting_id = await kiosk.identify()
    await kiosk.address()
    await kiosk.priced()
    _, first = await kiosk.printed()
    spec = kiosk.station.spec(first)
    kiosk.station.bank.close_by_hand(spec.board, spec.channel)  # closed without the parcel
    await until(lambda: desk.view_sync()["message"] == "dropoff_not_stored", what="door offered again")
    assert await kiosk.state(posting_id) == "printed" and desk.live.ticket is None
    ticket = await desk.dropoff()
    assert ticket is not None
    await kiosk.door_reads(ticket.compartment, "open")
    await kiosk.put_in(posting_id, ticket.compartment)
    parcels = await kiosk.db.read(lambda c: c.execute("SELECT state FROM parcels WHERE posting_id = ? ORDER BY id",
                                                      (posting_id,)).fetchall())
    assert [p["state"] for p in parcels] == ["cancelled", "stored"]
    assert len(kiosk.printer_sim.sim.labels) == 1
    assert await kiosk.db.read(invariants.check) == []


class CountingPayment(PayAtCounter):
    def __init__(self) -> None:
        self.asked: list[int] = []

    async def pay(self, posting_id: int, amount_fen: int) -> PaymentOutcome:
        self.asked.append(posting_id)
        return await super().pay(posting_id, amount_fen)


async def test_no_payment_is_taken_when_no_waybill_number_is_left(kiosk):
    payment = CountingPayment()
    one = dataclasses.replace(kiosk.settings, serial_last=kiosk.settings.serial_first)
    desk = await kiosk.new_desk(settings=one, payment=payment)
    await kiosk.post(kiosk.card(serial=30), desk)  # uses the block's only serial
    posting_id = await kiosk.identify(kiosk.card(serial=31), desk)
    await kiosk.address(desk)
    await kiosk.priced(desk=desk)
    with pytest.raises(PostingUnavailable) as err:
        await desk.confirm()
    assert err.value.reason == "waybill_numbers_used_up"
    row = await kiosk.row(posting_id)
    assert row["state"] == "priced" and row["payment_state"] is None
    assert posting_id not in payment.asked  # fails today: the resident was charged


# ------------------------------------------------------------------ collection by a courier


async def collect(kiosk: Kiosk, courier, posting_id: int, *, passed: bool, reason: str | None = None,
                  unknown_reason_first: bool = False) -> None:
    """Open, inspect at the open door, take the parcel out, close: the parcel leaves with the courier."""
    custody, station = kiosk.station.custody, kiosk.station
    parcel = await parcel_of(kiosk, posting_id)
    events = custody.subscribe()
    ticket = await custody.start_collection(courier, parcel["id"])
    await kiosk.wait_event(events, "collect.door_open")
    if unknown_reason_first:
        with pytest.raises(InvalidInput) as err:
            await custody.record_inspection(courier, parcel["id"], passed=False, reason="looks odd")
        assert err.value.field == "reason"
    await custody.record_inspection(courier, parcel["id"], passed=passed, reason=reason)
    spec = station.spec(ticket.compartment)
    station.bank.take_parcel(spec.board, spec.channel)
    station.bank.close_by_hand(spec.board, spec.channel)
    await kiosk.wait_event(events, "collect.dispatched")


async def test_a_courier_collects_outbound_mail_after_inspection(kiosk):
    custody = kiosk.station.custody
    ok_id, ok_label = await kiosk.post(kiosk.card(serial=1))
    bad_id, _ = await kiosk.post(kiosk.card(serial=2), grams=800)
    courier = await kiosk.station.make_courier()
    listed = await custody.collections(courier)
    waybills = {p: (await kiosk.row(p))["waybill"] for p in (ok_id, bad_id)}
    assert [r["waybill"] for r in listed] == [waybills[ok_id], waybills[bad_id]]
    assert listed[0]["compartment"] == ok_label and listed[0]["destination"] == "北京市 北京市"
    assert not [v for r in listed for v in map(str, r.values()) if SENDER_PHONE in v or RECIPIENT["name"] in v]

    await collect(kiosk, courier, ok_id, passed=True, unknown_reason_first=True)
    row, parcel = await kiosk.row(ok_id), await parcel_of(kiosk, ok_id)
    assert row["state"] == "collected" and row["end_reason"] is None
    assert parcel["state"] == "dispatched" and parcel["courier_id"] == courier.id

    await collect(kiosk, courier, bad_id, passed=False, reason="prohibited")
    row, parcel = await kiosk.row(bad_id), await parcel_of(kiosk, bad_id)
    assert row["state"] == "inspection_refused" and row["end_reason"] == "prohibited"
    assert parcel["state"] == "dispatched"
    assert await custody.collections(courier) == []
    assert await kiosk.db.read(invariants.check) == []
    compartments = {r["label"]: r["state"] for r in await custody.compartments()}
    assert compartments[ok_label] == "free"


async def test_only_couriers_of_the_collecting_carriers_see_outbound_mail(kiosk):
    custody = kiosk.station.custody
    custody.settings = dataclasses.replace(custody.settings, collect_carriers=("EMS",))
    posting_id, _ = await kiosk.post()
    parcel = await parcel_of(kiosk, posting_id)
    sf = await kiosk.station.make_courier()
    ems = await kiosk.db.write(lambda c: accounts.create_courier(c, login="30000003", name="邮政揽投员",
                                                                  carrier="EMS", pin="13572468", now=0.0))
    pulses = await total_pulses(kiosk)
    assert await custody.collections(sf) == []
    with pytest.raises(NotAllowed):
        await custody.start_collection(sf, parcel["id"])
    assert await total_pulses(kiosk) == pulses
    assert [r["parcel_id"] for r in await custody.collections(ems)] == [parcel["id"]]
    await collect(kiosk, ems, posting_id, passed=True)
    assert await kiosk.state(posting_id) == "collected"


# ------------------------------------------------------------------ cancelling, restarts, retention


async def test_cancel_before_payment_shreds_and_after_payment_is_refused(kiosk):
    desk = kiosk.desk
    posting_id = await kiosk.identify()
    await kiosk.address()
    await kiosk.priced()
    await desk.cancel()
    row = await kiosk.row(posting_id)
    assert row["state"] == "cancelled" and row["end_reason"] == "cancelled_by_resident"
    assert all(row[c] is None for c in PERSONAL_COLUMNS) and row["shredded_at"] is not None
    cancelled = await kiosk.events("posting_cancelled")
    assert [(detail(e)["posting_id"], detail(e)["reason"]) for e in cancelled] == [(posting_id,
                                                                                     "cancelled_by_resident")]
    assert desk.live is None and (await desk.view())["step"] == "notice"

    kiosk.printer_sim.sim.set(paper_out=True)  # keeps the next one at 'paid'
    paid_id = await kiosk.identify(kiosk.card(serial=9))
    await kiosk.address()
    await kiosk.priced()
    await desk.confirm()
    with pytest.raises(FlowConflict):
        await desk.cancel()
    row = await kiosk.row(paid_id)
    assert row["state"] == "paid" and all(row[c] is not None for c in PERSONAL_COLUMNS)


async def test_a_restart_cancels_unpaid_postings_and_retention_purges_the_id_number(kiosk):
    done_id, _ = await kiosk.post(kiosk.card(serial=20))  # in the locker

    reading = kiosk.make_desk()
    kiosk.idcard.remove_card()
    reading_id = (await reading.begin(agreed=True))["posting_id"]  # waits for a card
    await reading.stop()

    drafting = kiosk.make_desk()
    drafting_id = await kiosk.identify(kiosk.card(serial=21), drafting)
    await kiosk.address(drafting)
    await drafting.stop()

    priced = kiosk.make_desk()
    priced_id = await kiosk.identify(kiosk.card(serial=22), priced)
    await kiosk.address(priced)
    await kiosk.priced(desk=priced)
    await priced.stop()

    kiosk.printer_sim.sim.set(paper_out=True)
    paid = kiosk.make_desk()
    paid_id = await kiosk.identify(kiosk.card(serial=23), paid)
    await kiosk.address(paid)
    await kiosk.priced(desk=paid)
    await paid.confirm()
    await paid.stop()

    states = {p: await kiosk.state(p) for p in (reading_id, drafting_id, priced_id, paid_id, done_id)}
    assert states == {reading_id: "reading_card", drafting_id: "drafting", priced_id: "priced",
                      paid_id: "paid", done_id: "in_locker"}

    await kiosk.new_desk()  # the service starts again on the same database
    for posting_id in (reading_id, drafting_id, priced_id):
        row = await kiosk.row(posting_id)
        assert (row["state"], row["end_reason"]) == ("cancelled", "interrupted")
        assert all(row[c] is None for c in PERSONAL_COLUMNS)
    interrupted = [detail(e)["posting_id"] for e in await kiosk.events("posting_cancelled")
                   if detail(e)["reason"] == "interrupted"]
    assert sorted(interrupted) == sorted([reading_id, drafting_id, priced_id])
    for posting_id, state in ((paid_id, "paid"), (done_id, "in_locker")):
        row = await kiosk.row(posting_id)
        assert row["state"] == state and row["id_enc"] is not None  # kept for the staff
    # the paid posting's label was never printed: it prints now, once, when the paper is in; no door
    printed_before = len(kiosk.printer_sim.sim.labels)
    pulses_before = await total_pulses(kiosk)
    kiosk.printer_sim.sim.set(paper_out=False)
    await kiosk.wait_state(paid_id, "printed")
    await asyncio.sleep(0.3)
    assert len(kiosk.printer_sim.sim.labels) == printed_before + 1
    assert await total_pulses(kiosk) == pulses_before

    kiosk.station.clock.advance((kiosk.settings.id_retention_days + 1) * 86400)
    await kiosk.new_desk()
    for posting_id in (paid_id, done_id):
        row = await kiosk.row(posting_id)
        assert row["id_enc"] is None and row["shredded_at"] is not None
        assert row["id_masked"] and row["waybill"]  # the masked form and the waybill stay
