"""Voice prompts: what each screen says aloud, and the route that plays it (spec §9.4).

Every screen's main instruction can be read aloud in the page's language: the page asks
``GET /api/voice?prompt=<key>`` and plays the WAV (``static/voice.js``; mute and repeat in the header).
Keys name the page, and the step where a page has several: ``pickup``, ``deposit/2``, ``post/weigh``.
``door`` and ``result`` are resolved here from the live screen (the flow, the result and its reason),
so a page never tells the service what to say and nobody can make the kiosk speak arbitrary text.

Door numbers and codes are spoken one character at a time (:func:`spell_digits`): "A05" said as a
number is "A five", and a resident must match what they hear to the label on a door.

The spoken text is the screen's own message (the same msgid where the screen has one), so it is
translated with the screen; ``VOICES`` picks the engine voice for each language.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, Response

from hal.errors import HalError
from hal.speech import Speech, speech_engine
from kiosk import i18n
from kiosk.i18n import _
from kiosk.problems import KEYS as PROBLEM_KEYS
from kiosk.problems import problem

if TYPE_CHECKING:
    from kiosk.app import Kiosk

log = logging.getLogger(__name__)

#: kiosk language -> engine voice (espeak-ng names). Mandarin is ``cmn-latn-pinyin``: espeak-ng 1.51's
#: ``cmn`` says Chinese characters as English-read pinyin ("hao two", espeak-ng#1236). Traditional
#: Chinese (Hong Kong wording) is read in Cantonese; another Traditional locale falls back to it.
VOICES: dict[str, str] = {
    "zh_Hans_CN": "cmn-latn-pinyin",
    "zh_Hant_HK": "yue",
    "en": "en",
}


def voice_for(locale: str, voices: dict[str, str] | None = None) -> str:
    """The engine voice for a kiosk language: an exact entry, else one for the same script, else English."""
    table = VOICES if voices is None else {**VOICES, **voices}
    if locale in table:
        return table[locale]
    script = "zh_Hant" if locale.startswith("zh_Hant") else "zh_Hans" if locale.startswith("zh") else None
    for name, voice in table.items():
        if script and name.startswith(script):
            return voice
    return table.get("en", "en")


def spell_digits(code: str) -> str:
    """A door number or code as separate characters: ``"A05"`` -> ``"A, 0, 5"``.

    Commas, not just spaces: every voice then pauses between characters, and English says a lone
    "A" as the letter rather than the article. Characters other than letters and digits (spaces,
    dashes) only separate.
    """
    return ", ".join(ch for ch in code.upper() if ch.isascii() and ch.isalnum())


@dataclass(frozen=True)
class PromptContext:
    """The live values a prompt speaks. No personal data: a compartment label, an amount, a message
    already written for the screen."""

    compartment: str | None = None
    price_fen: int | None = None
    message: str | None = None  # a scan refusal, already in the page's language (kiosk/scans.py)


def _sentences(*parts: str) -> str:
    """Join texts into one prompt with a full stop between them (a pause in every voice)."""
    out = []
    for part in parts:
        part = part.strip()
        if part:
            out.append(part if part[-1] in ".。!！?？…:：" else part + ".")
    return " ".join(out)


def _door(ctx: PromptContext) -> str:
    return _("Compartment %(c)s.", c=spell_digits(ctx.compartment)) if ctx.compartment else ""


def _c(ctx: PromptContext) -> str:
    return spell_digits(ctx.compartment or "")


def _money(fen: int) -> str:
    """An amount as a voice says it: "12 yuan 50 fen" (a decimal point is skipped by some voices)."""
    yuan, rest = divmod(fen, 100)
    if rest == 0:
        return _("%(yuan)s yuan", yuan=yuan)
    return _("%(yuan)s yuan %(fen)s fen", yuan=yuan, fen=rest)


def _price(ctx: PromptContext) -> str:
    amount = _("The postage is %(amount)s.", amount=_money(ctx.price_fen)) if ctx.price_fen is not None \
        else _("Postage")
    return _sentences(amount, _("Nothing is charged before you confirm."))


def _fee(ctx: PromptContext) -> str:
    if ctx.price_fen is None:
        return _sentences(_("Storage fee"))
    return _sentences(_("Storage fee"), _money(ctx.price_fen),
                      _("Nothing is charged before you confirm. You can also pay at the counter; your code stays valid."))


Prompt = Callable[[PromptContext], str]

#: prompt key -> the text to say. Keys: the page (body ``data-page``), a step after a slash.
PROMPTS: dict[str, Prompt] = {
    "home": lambda ctx: _sentences(_("Welcome"), _("Tap “Pick up a parcel” or “Post a parcel”.")),
    "pickup": lambda ctx: _sentences(_("Enter your pickup code"),
                                     _("The 8-digit code is in the message you received.")),
    "courier-login": lambda ctx: _sentences(_("Courier login"), _("Enter your courier number and PIN.")),
    "deposit/1": lambda ctx: _sentences(_("Step 1 of 3: tracking number"), _("Or scan the waybill's barcode.")),
    "deposit/2": lambda ctx: _sentences(_("Step 2 of 3: recipient's mobile number")),
    "deposit/3": lambda ctx: _sentences(_("Step 3 of 3: size and consent")),
    "retrieve": lambda ctx: _sentences(_("Parcels to take back")),
    "help": lambda ctx: _sentences(
        _("To pick up a parcel, tap “Pick up a parcel” and enter the 8-digit code from your message."),
        _("Staff are at the counter inside the station.")),
    "catalogue": lambda ctx: _sentences(_("Items that cannot be posted")),
    "maintenance": lambda ctx: _sentences(_("The locker is under maintenance. Please ask the staff.")),
    "still-there": lambda ctx: _sentences(_("Do you need more time?")),  # the idle question, any page
    # door screens, one per flow
    "door/pickup": lambda ctx: _sentences(_door(ctx), _("Your door is open. Take your parcel, then close the door.")),
    "door/pickup_refusing": lambda ctx: _sentences(_door(ctx), _(
        "You refused this parcel. Put it back into the compartment and close the door; it goes back to the courier.")),
    "door/deposit": lambda ctx: _sentences(_door(ctx), _("Put the parcel in, then close the door.")),
    "door/posting": lambda ctx: _sentences(_door(ctx), _("Stick the label on, put the parcel in, then close the door.")),
    "door/collect": lambda ctx: _sentences(_door(ctx), _(
        "Inspect the item, record the result, take it and close the door.")),
    "door/retrieve": lambda ctx: _sentences(_door(ctx), _("Take the parcel out, then close the door.")),
    # result screens, one per result key (and reason where the screen says something else)
    "result/deposit_stored": lambda ctx: _("Parcel stored in compartment %(c)s. The recipient gets the pickup "
                                           "code by SMS.", c=_c(ctx)),
    "result/deposit_cancelled": lambda ctx: _("Deposit cancelled. Nothing was stored. If the door of %(c)s is "
                                              "open, take the parcel out and close it.", c=_c(ctx)),
    "result/deposit_cancelled/closed_empty": lambda ctx: _(
        "No parcel was detected in compartment %(c)s, so nothing was stored.", c=_c(ctx)),
    "result/deposit_cancelled/door_not_opened": lambda ctx: _(
        "Compartment %(c)s did not open. Nothing was stored; please try again, another compartment will be used.",
        c=_c(ctx)),
    "result/deposit_cancelled/door_not_closed": lambda ctx: _(
        "The door of %(c)s was not closed in time. Nothing was stored. Please take the parcel out and close the "
        "door.", c=_c(ctx)),
    "result/collected": lambda ctx: _("Thank you. Your parcel has been collected."),
    "result/not_taken": lambda ctx: _("The parcel is still in compartment %(c)s. Your pickup code stays valid.",
                                      c=_c(ctx)),
    "result/refused": lambda ctx: _("The parcel was refused and stays in compartment %(c)s for the courier to "
                                    "take back.", c=_c(ctx)),
    "result/returned": lambda ctx: _("Parcel taken back from compartment %(c)s.", c=_c(ctx)),
    "result/retrieve_not_taken": lambda ctx: _("The parcel is still in compartment %(c)s. It stays on your list "
                                               "to take back.", c=_c(ctx)),
    "result/door_not_opened": lambda ctx: _("Compartment %(c)s did not open. Your pickup code stays valid. "
                                            "Please call the staff.", c=_c(ctx)),
    "result/posted": lambda ctx: _("Posted. Your parcel is in compartment %(c)s.", c=_c(ctx)),
    "result/dropoff_cancelled": lambda ctx: _("The parcel was not put into compartment %(c)s. Please hand it in "
                                              "at the counter with your label.", c=_c(ctx)),
    "result/posting_refused": lambda ctx: _("We cannot accept this item: it is on the list of items that cannot "
                                            "be posted. Nothing was charged."),
    "result/posting_refused/id": lambda ctx: _(
        "We cannot accept this posting: the ID card could not be verified (expired, or its number is not valid). "
        "Please ask the staff."),
    "result/posting_refused/item_needs_counter_inspection": lambda ctx: _(
        "This item must be inspected at the counter before it can be posted. Please take it to the staff."),
    "result/dispatched": lambda ctx: _("Outbound parcel from compartment %(c)s handed over.", c=_c(ctx)),
    "result/scan_refused": lambda ctx: ctx.message or _("Problem"),
    "result/scan_not_pickup": lambda ctx: _("This code is not a pickup code of this locker."),
    # posting a parcel, one per step
    "post/notice": lambda ctx: _sentences(_("Post a parcel"), _(
        "Please read why we read your ID card, then tap “I agree, read my ID card”.")),
    "post/unavailable": lambda ctx: _("Posting is not available at this kiosk right now. Please ask the staff."),
    "post/card": lambda ctx: _sentences(_("Place your ID card on the reader"),
                                        _("Leave it there until the next screen appears.")),
    "post/recipient": lambda ctx: _sentences(_("Your ID card has been read: please take it back from the reader."),
                                             _("Who is it for?"),
                                             _("Enter the recipient's name, phone and address.")),
    "post/item": lambda ctx: _sentences(_("What are you sending?")),
    "post/weigh": lambda ctx: _sentences(_("Put the parcel on the scale"), _("Weighing … keep the parcel still.")),
    "post/price": _price,
    "post/paying": lambda ctx: _sentences(_(
        "Show the payment code of your wallet app (WeChat, Alipay or e-CNY) to the scanner.")),
    "post/printing": lambda ctx: _sentences(_("Printing your label …")),
    "fee": _fee,
    "bills": lambda ctx: _sentences(_("Pay a bill"), _("1. What do you want to pay?"),
                                    _("2. Mobile number or account number"), _("3. How much?")),
    "post/dropoff": lambda ctx: _sentences(_("Take your label and stick it on the parcel."),
                                           _("Then tap “Open a door” and put the parcel in.")),
    "queue": lambda ctx: _sentences(_("Queue for the counter"), _("Take a ticket")),
}
# every problem screen reads what happened and what to do next (kiosk.problems, one table)
PROMPTS.update({f"problem/{key}": (lambda ctx, k=key: _sentences(problem(k).what, problem(k).next))  # type: ignore[union-attr]
                for key in PROBLEM_KEYS})


class UnknownPrompt(LookupError):
    """No prompt has this key (a page asked for a screen that has nothing to say)."""


def prompt_text(key: str, ctx: PromptContext | None = None) -> str:
    """The words of prompt ``key`` in the current language (:func:`kiosk.i18n.set_language`)."""
    try:
        prompt = PROMPTS[key]
    except KeyError:
        raise UnknownPrompt(key) from None
    return prompt(ctx or PromptContext())


def screen_prompt(screen: Any) -> tuple[str, PromptContext]:
    """The prompt of the live door or result screen (``kiosk.terminal.Screen``)."""
    ctx = PromptContext(compartment=screen.compartment)
    if screen.name == "door":
        flow = screen.flow or "pickup"
        key = "door/pickup_refusing" if flow == "pickup" and screen.refusing else f"door/{flow}"
        return key, ctx
    if screen.name == "result" and screen.result:
        detail = screen.detail or {}
        reason = str(detail.get("reason") or "")
        if screen.result == "posting_refused" and reason.startswith("id_"):
            reason = "id"
        if screen.result == "scan_refused":
            messages = detail.get("messages") or {}
            ctx = PromptContext(message=messages.get(i18n.language()) or detail.get("message"))
        key = f"result/{screen.result}"
        return (f"{key}/{reason}" if f"{key}/{reason}" in PROMPTS else key), ctx
    return "home", ctx


async def resolve(key: str, kiosk: Kiosk) -> tuple[str, PromptContext]:
    """Turn what a page asked for into a prompt key and its live values.

    ``door`` and ``result`` (and their ``door/...``/``result/...`` forms) follow the terminal's screen;
    ``post/...`` takes the amount from the posting on the kiosk. Raises ``UnknownPrompt``."""
    page, _slash, step = key.partition("/")
    screen = kiosk.terminal.screen if kiosk.terminal is not None else None
    if page in ("door", "result") and screen is not None and screen.name == page:
        return screen_prompt(screen)
    ctx = PromptContext()
    if page == "post":
        step = step or "notice"
        if kiosk.posting is not None:
            view = await kiosk.posting.view()
            step = view.get("step") or step
            if step == "notice" and not (await kiosk.posting.availability())[0]:
                step = "unavailable"
            ctx = PromptContext(price_fen=view.get("price_fen"))
        key = f"post/{step}"
    if page == "fee":
        fee = kiosk.pay.current_fee()
        ctx = PromptContext(price_fen=fee.fee_fen if fee else None)
        key = "fee"
    if key not in PROMPTS:  # also a door or result page that is no longer on screen: it reloads anyway
        raise UnknownPrompt(key)
    return key, ctx


KeyParam = Annotated[str, Query(min_length=1, max_length=48, pattern=r"^[a-z0-9_/-]+$",
                                description="the page, and its step after a slash: pickup, deposit/2, "
                                            "post/weigh; door and result follow the live screen")]


def add_voice_routes(app: FastAPI, kiosk: Kiosk, speech: Speech | None = None,
                     voices: dict[str, str] | None = None) -> None:
    """``GET /api/voice`` (the WAV) and ``GET /api/voice/text`` (what it says).

    ``speech``: the engine (default: ``kiosk.speech`` if the service set one, else espeak-ng with its
    defaults). ``voices`` overrides entries of :data:`VOICES` (a Cantonese station: ``{"zh_Hans_CN": "yue"}``).
    """
    engine = speech or getattr(kiosk, "speech", None) or speech_engine("espeak-ng")

    async def spoken(prompt: str) -> tuple[str, str, str]:
        key, ctx = await resolve(prompt, kiosk)
        return key, prompt_text(key, ctx), voice_for(i18n.language(), voices)

    @app.get("/api/voice", tags=["resident"], response_class=Response,
             responses={200: {"content": {"audio/wav": {}}}})
    async def voice(prompt: KeyParam) -> Response:
        """The screen's prompt spoken in the page's language, as WAV. 404: no such prompt;
        503: the speech engine is not installed or failed."""
        try:
            key, text, voice_name = await spoken(prompt)
        except UnknownPrompt:
            return JSONResponse({"error": "unknown_prompt", "prompt": prompt}, status_code=404)
        try:
            wav = await engine.render(text, voice_name)
        except HalError as err:
            log.warning("voice prompt %s unavailable: %s", key, err)
            return JSONResponse({"error": "voice_unavailable", "message": _("Voice prompts are not available "
                                 "right now.")}, status_code=503)
        return Response(wav, media_type="audio/wav", headers={"Cache-Control": "no-store", "X-Prompt": key})

    @app.get("/api/voice/text", tags=["resident"])
    async def voice_text(prompt: KeyParam) -> JSONResponse:
        """What ``/api/voice`` would say for this prompt, and with which voice."""
        try:
            key, text, voice_name = await spoken(prompt)
        except UnknownPrompt:
            return JSONResponse({"error": "unknown_prompt", "prompt": prompt}, status_code=404)
        return JSONResponse({"prompt": key, "text": text, "voice": voice_name, "language": i18n.language()})
