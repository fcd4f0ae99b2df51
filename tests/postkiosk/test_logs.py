"""The log redaction filter (T-E1): ID numbers, mobiles and payment-code-shaped digits are masked,
whatever logged them; other numbers are left alone."""

from __future__ import annotations

import logging
import random

from hypothesis import given
from hypothesis import strategies as st

from hal.codes import resident_id_check_char
from postkiosk.logs import RedactingFilter, install, redact


def test_an_id_number_is_masked_to_its_last_four():
    assert redact("card 11010519491231002X read") == "card **************002X read"
    assert redact("card 11010519491231002x read") == "card **************002X read"


def test_a_long_run_of_digits_is_masked_even_when_it_is_no_valid_id_number():
    assert redact("x 11010119900101123X y") == "x *************1123X y"  # wrong check character: 17 digits
    assert redact("n 110101199001011230 y") == "n **************1230 y"  # 18 digits: a payment-code shape


def test_mobiles_spaced_dashed_and_plain():
    for text in ("13812345678", "138 1234 5678", "138-1234-5678"):
        assert redact(f"to {text}.") == "to 138****5678."


def test_payment_code_shapes_and_ordinary_numbers():
    assert redact("auth 134567890123456789") == "auth **************6789"
    assert redact("waybill SF1234567890 and door 12") == "waybill SF1234567890 and door 12"
    assert redact("CP100000003CN at 2026-12-05 10:00") == "CP100000003CN at 2026-12-05 10:00"


@given(st.integers(min_value=0, max_value=10 ** 17 - 1))
def test_every_valid_id_number_is_masked(n):
    body = f"{n:017d}"
    number = body + resident_id_check_char(body)
    assert number not in redact(f"id={number}")


def test_the_filter_rewrites_records_and_tracebacks():
    rng = random.Random(3)
    body = f"{rng.randrange(10 ** 17):017d}"
    number = body + resident_id_check_char(body)
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    logger = logging.Logger("redact-test")
    keep = Keep()
    logger.addHandler(keep)
    install(logger)
    install(logger)  # twice: still one filter
    assert sum(isinstance(f, RedactingFilter) for f in keep.filters) == 1
    logger.warning("reader said %s for %s", number, "13912345678")
    try:
        raise ValueError(f"bad card {number}")
    except ValueError:
        logger.exception("failed")
    text = "\n".join(lines)
    assert number not in text and "13912345678" not in text
    assert number[-4:] in text and "139****5678" in text and "ValueError" in text
