"""One table of problems (issue 9): every kind of trouble a person can meet has what happened and
what to do next, in every language, shown as a screen of its own."""

from __future__ import annotations

import pytest

from kiosk import i18n
from kiosk.problems import KEYS, POSTING_MESSAGES, problem

NEEDED = {"door_jammed", "printer_paper_out", "reader_not_responding", "wrong_code", "network_down",
          "payment_not_confirmed"}  # the ones issue 9 names


def test_the_table_has_every_problem_the_issue_names():
    assert NEEDED <= set(KEYS)
    assert set(POSTING_MESSAGES.values()) <= set(KEYS)
    assert problem("no_such_thing") is None and problem(None) is None


@pytest.mark.parametrize("locale", list(i18n.LANGUAGES))
def test_every_problem_says_what_and_what_next_in_every_language(locale):
    i18n.load_catalogs()
    token = i18n.set_language(locale)
    try:
        for key in KEYS:
            p = problem(key)
            assert p.what.strip() and p.next.strip() and p.what != p.next, key
            if locale != "en":
                assert not p.what.isascii(), (locale, key, p.what)  # translated, not the English id
    finally:
        i18n._current.reset(token)


async def test_each_problem_is_a_screen_with_the_station_phone(kiosk_station):
    for key in KEYS:
        r = await kiosk_station.client.get(f"/problem/{key}")
        assert r.status_code == 200, key
        assert f'data-problem="{key}"' in r.text and "0571-12345678" in r.text
    assert (await kiosk_station.client.get("/problem/nonsense")).status_code == 404


def test_a_failed_payment_says_what_happened_to_the_money():
    from kiosk.problems import payment_problem

    assert payment_problem(None).key == "payment_not_confirmed"  # nothing was charged
    assert payment_problem("NOTENOUGH").key == "payment_not_confirmed"
    assert payment_problem("payment_refunded").key == "payment_refunded"  # taken, and given back
    assert payment_problem("payment_unsettled").key == "payment_unsettled"  # a reverse still open
    assert payment_problem("payment_channel_unavailable").key == "wallet_not_accepted"
