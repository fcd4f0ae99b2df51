"""Lock-status bitmaps shared by the lock-board codecs: pure, no I/O.

A status bitmap is a run of bytes; bit 0 of a byte is the lowest channel that byte carries. Boards
disagree on which byte carries channels 1-8 (hardware-protocols.md §1.4), so the byte order is a
parameter: ``first_byte_first=True`` puts channels 1-8 in the first byte (the bytes read as a
little-endian integer), ``False`` puts them in the last byte (big-endian).
"""

from __future__ import annotations

from collections.abc import Sequence


def bits_from_bytes(data: bytes | bytearray, *, first_byte_first: bool = True) -> tuple[bool, ...]:
    """Raw bits, index 0 = channel 0 (lock 1); ``8 * len(data)`` of them."""
    ordered = bytes(data) if first_byte_first else bytes(data)[::-1]
    return tuple(bool(byte >> bit & 1) for byte in ordered for bit in range(8))


def bytes_from_bits(bits: Sequence[bool], nbytes: int, *, first_byte_first: bool = True) -> bytes:
    """The inverse of :func:`bits_from_bytes`; channels beyond ``len(bits)`` are 0."""
    if len(bits) > 8 * nbytes:
        raise ValueError(f"{len(bits)} channels do not fit in {nbytes} status byte(s)")
    value = sum(1 << i for i, bit in enumerate(bits) if bit)
    return value.to_bytes(nbytes, "little" if first_byte_first else "big")
