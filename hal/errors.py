"""Errors raised by ``hal`` devices, one class per phase of a device's life (python-can's taxonomy).

A device that answers "no" (a jammed door, a board reporting a checksum error) is a returned value,
not an exception. These exceptions mean the device could not be used at all.
"""


class HalError(Exception):
    """Root of every error raised by a ``hal`` device."""


class DeviceUnavailable(HalError):
    """The configured backend cannot be used here (unknown name, vendor library missing)."""


class DeviceOpenError(HalError):
    """The device's port or connection could not be opened."""


class DeviceIOError(HalError):
    """The device failed while running (link lost, garbage instead of replies)."""


class DeviceTimeout(DeviceIOError, TimeoutError):
    """The device did not answer within its timeout."""
