"""Helpers for codec tests: run a decoder over a whole buffer the way a reader does."""

from __future__ import annotations

from collections.abc import Callable


def frames_in(
    buf: bytes,
    decoder: Callable[[bytearray], tuple[int, object]],
    may_wait: Callable[[bytearray], bool],
) -> tuple[list[tuple[int, object]], int]:
    """([(offset, frame)], bytes skipped). ``may_wait(rest)`` says when "need more bytes" is
    legitimate (a frame start shorter than the longest frame); anything else is a stall."""
    found, skipped, offset, rest = [], 0, 0, bytearray(buf)
    while rest:
        consumed, frame = decoder(rest)
        assert 0 <= consumed <= len(rest)
        if consumed == 0:
            assert may_wait(rest), f"stalled on {rest.hex(' ')}"
            break
        if frame is None:
            skipped += consumed
        else:
            found.append((offset, frame))
        del rest[:consumed]
        offset += consumed
    return found, skipped
