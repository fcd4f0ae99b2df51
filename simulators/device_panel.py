"""The demo's hands on the simulated devices: put an ID card on the reader, a parcel on the scale,
take the paper out of the label printer, cover the camera. Mounted by ``postkiosk.demo`` under
``/sim/api/devices``; a browser test drives the posting flow through it, like a person at the kiosk.

Cards are synthetic (``simulators.idcard.make_card``): a test may send its own generated fields
to find them later in the canary scan. The answers never carry the ID number.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field

from hal.idcard import CardType, Sex


class CardIn(BaseModel):
    card_type: str = Field("resident", description="resident, hk_mo_tw_permit or foreign_permanent")
    age: int | None = Field(None, ge=1, le=120, description="make the holder this old today")
    expired: bool = False
    long_term: bool = False
    name: str | None = None
    id_number: str | None = Field(None, description="a generated number to use (tests that look for it)")
    birth: dt.date | None = None
    address: str | None = None


class WeightIn(BaseModel):
    grams: int = Field(ge=0, le=200_000)
    unstable: bool = False


class PrinterIn(BaseModel):
    paper_out: bool | None = None
    cover_open: bool | None = None


def device_router(sims: dict[str, Any], camera: Any = None, *, seed: int | None = None) -> APIRouter:
    """``sims``: the running device simulators by name (idcard, scale, label_printer,
    receipt_printer); ``camera``: the simulated surveillance camera."""
    router = APIRouter()
    rng = random.Random(seed)

    def sim(name: str) -> Any:
        if name not in sims:
            raise HTTPException(404, f"no simulated {name}")
        return sims[name].sim

    @router.post("/sim/api/devices/idcard", name="sim_idcard_present")
    async def present_card(body: CardIn) -> dict[str, Any]:
        overrides: dict[str, Any] = {}
        today = dt.date.today()
        if body.age is not None:
            birth = body.birth or today.replace(year=today.year - body.age) - dt.timedelta(days=rng.randrange(1, 300))
            overrides["birth"] = birth
        elif body.birth is not None:
            overrides["birth"] = body.birth
        if body.expired:
            overrides["valid_from"] = today.replace(year=today.year - 21)
            overrides["valid_to"] = today.replace(year=today.year - 1)
        for key in ("name", "id_number", "address"):
            if getattr(body, key) is not None:
                overrides[key] = getattr(body, key)
        card_type = CardType(body.card_type)
        number = overrides.get("id_number")
        if number and card_type is not CardType.FOREIGN_PERMANENT and len(number) == 18 and number[16].isdigit():
            overrides["sex"] = Sex.MALE if int(number[16]) % 2 else Sex.FEMALE  # the card agrees with its number
        if "birth" in overrides and "id_number" not in overrides and card_type is not CardType.FOREIGN_PERMANENT:
            from simulators.idcard import make_card

            # a number whose birth date agrees with the card's
            base = make_card(card_type, rng=rng)
            overrides["id_number"] = _renumber(base.id_number, overrides["birth"])
            overrides["sex"] = base.sex
        text = sim("idcard").present_card(card_type, long_term=body.long_term, **overrides)
        return {"card_type": text.card_type.value, "present": True}

    @router.delete("/sim/api/devices/idcard", name="sim_idcard_remove")
    async def remove_card() -> dict[str, Any]:
        sim("idcard").remove_card()
        return {"present": False}

    @router.post("/sim/api/devices/scale", name="sim_scale")
    async def weigh(body: WeightIn) -> dict[str, Any]:
        scale = sim("scale")
        if body.grams == 0:
            scale.remove()
        else:
            scale.put_weight(body.grams)
        scale.hold_unstable(body.unstable)
        return {"grams": body.grams, "unstable": body.unstable}

    @router.post("/sim/api/devices/{name}", name="sim_printer")
    async def printer(name: str, body: PrinterIn) -> dict[str, Any]:
        if name not in ("label_printer", "receipt_printer"):
            raise HTTPException(404, f"no simulated {name}")
        device = sim(name)
        if name == "label_printer":
            flags = {k: v for k, v in (("paper_out", body.paper_out), ("cover_open", body.cover_open)) if v is not None}
            device.set(**flags)
        else:
            if body.paper_out is not None:
                device.set_paper("out" if body.paper_out else "ok")
            if body.cover_open is not None:
                (device.open_cover if body.cover_open else device.close_cover)()
        return {"name": name, **body.model_dump(exclude_none=True)}

    @router.get("/sim/api/devices/{name}/last.png", name="sim_printed", response_class=Response)
    async def printed(name: str) -> Response:
        """The last label or receipt the simulated printer made, as the printer would have put it
        on paper (rebuilt from the bytes it received)."""
        device = sim(name)
        images = [label.image for label in device.labels] if name == "label_printer" else device.images
        if not images:
            raise HTTPException(404, "nothing printed yet")
        buf = io.BytesIO()
        images[-1].save(buf, format="PNG")
        return Response(buf.getvalue(), media_type="image/png")

    @router.post("/sim/api/devices/camera/{state}", name="sim_camera")
    async def camera_state(state: str) -> dict[str, Any]:
        if camera is None:
            raise HTTPException(404, "no simulated camera")
        if state == "down":
            camera.stop_frames()
        elif state == "up":
            camera.resume_frames()
        else:
            raise HTTPException(422, "state is up or down")
        return {"camera": state}

    return router


def _renumber(id_number: str, birth: dt.date) -> str:
    """The same region and sequence with another birth date, and the check character recomputed."""
    from hal.codes import resident_id_check_char

    body = f"{id_number[:6]}{birth:%Y%m%d}{id_number[14:17]}"
    return body + resident_id_check_char(body)


#: payment code shapes the simulated wallets show (rules-and-identifiers.md §3.3)
WALLET_CODES = {"wechat": ("13", 18), "alipay": ("28", 18), "ecny": ("01", 19), "unionpay": ("62", 19)}


class WalletIn(BaseModel):
    kind: str = Field("success", description="how the gateway answers: success, userpaying, notenough, "
                      "systemerror, timeout, ... (simulators.pay_gateway.Scenario)")
    then: str = "success"
    after_queries: int | None = Field(None, ge=0, le=100)
    after_seconds: float | None = Field(None, ge=0, le=600)
    code: str | None = Field(None, pattern=r"^\d{16,24}$", description="show this code instead of a fresh "
                             "one (tests that search for it afterwards)")


def wallet_router(gateway: Any, scanner: Any, *, seed: int | None = None) -> APIRouter:
    """A resident's phone: ``POST /sim/api/wallet/{channel}`` makes a fresh payment code of that
    wallet, tells the gateway simulator how to answer it, and shows it to the simulated scanner.
    ``GET /sim/api/wallet/ledger`` is the gateway's record (charges and refunds per order)."""
    from simulators.pay_gateway import Scenario

    router = APIRouter()
    rng = random.Random(seed)

    @router.post("/sim/api/wallet/{channel}", name="sim_wallet_pay")
    async def show_code(channel: str, body: WalletIn | None = None) -> dict[str, Any]:
        if channel not in WALLET_CODES:
            raise HTTPException(404, f"no wallet {channel!r}; known: {', '.join(WALLET_CODES)}")
        body = body or WalletIn()
        try:
            scenario = Scenario(kind=body.kind, then=body.then, after_queries=body.after_queries,
                                after_seconds=body.after_seconds)
        except ValueError as err:
            raise HTTPException(422, str(err)) from err
        prefix, length = WALLET_CODES[channel]
        code = body.code or prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix)))
        gateway.script(scenario, auth_code=code)
        if scanner is None:
            raise HTTPException(404, "no simulated scanner")
        scanner.scan(code)
        return {"channel": channel, "last4": code[-4:], "kind": body.kind}

    @router.get("/sim/api/wallet/ledger", name="sim_wallet_ledger")
    async def ledger() -> list[dict[str, Any]]:
        return [{"out_trade_no": o.out_trade_no, "amount_fen": o.total_fee, "state": o.trade_state,
                 "charges": o.charges, "refunds": o.refunds, "last4": o.code_tail}
                for o in gateway.orders.values()]

    return router
