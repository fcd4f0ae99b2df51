"""Errors of ``firmware_bridge``: one root, one class per phase of a link's life (python-can's taxonomy).

A board that answers "no" is a decoded frame, not an exception; these mean the bytes did not get
through.
"""


class BridgeError(Exception):
    """Root of every error raised by ``firmware_bridge``."""


class LinkOpenError(BridgeError):
    """The serial port or socket named by the URL could not be opened."""


class LinkError(BridgeError):
    """The link failed while running (port gone, peer closed the socket, write failed)."""


class LinkTimeout(LinkError, TimeoutError):
    """Nothing usable arrived (or could be written) within the timeout."""
