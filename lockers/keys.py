"""Per-device secrets: the keys that encrypt phone numbers and key the HMACs of codes and phones.

The key file is created once, with mode 0600, beside the database (or where configured). Nothing in
it is shared between devices, so reading one station's SD card reveals no other station's codes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lockers.errors import StorageError

_KEY_FILE_SIZE = 64
_MAGIC = b"PKK1"


@dataclass(frozen=True)
class DeviceKeys:
    """``mac_key`` keys every HMAC (with a purpose label); ``data_key`` encrypts personal data (AES-256-GCM)."""

    mac_key: bytes
    data_key: bytes

    @classmethod
    def load_or_create(cls, path: Path) -> DeviceKeys:
        if path.exists():
            raw = path.read_bytes()
            if len(raw) != len(_MAGIC) + _KEY_FILE_SIZE or not raw.startswith(_MAGIC):
                raise StorageError(f"device key file {path.name} is damaged; refusing to make a new one")
            body = raw[len(_MAGIC):]
            return cls(mac_key=body[:32], data_key=body[32:])
        path.parent.mkdir(parents=True, exist_ok=True)
        body = secrets.token_bytes(_KEY_FILE_SIZE)
        # Written whole to a temporary name, synced, then renamed: a power cut at any moment leaves
        # either no key file (a new one is made) or a complete one, never an empty one.
        partial = path.with_name(path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(_MAGIC + body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return cls(mac_key=body[:32], data_key=body[32:])

    def mac(self, purpose: str, value: str) -> bytes:
        """Keyed HMAC-SHA256 of ``value`` for one ``purpose`` (``code``, ``phone``...)."""
        return hmac.new(self.mac_key, purpose.encode() + b"\x00" + value.encode(), hashlib.sha256).digest()

    def encrypt(self, purpose: str, value: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + AESGCM(self.data_key).encrypt(nonce, value.encode(), purpose.encode())

    def decrypt(self, purpose: str, blob: bytes) -> str:
        return AESGCM(self.data_key).decrypt(blob[:12], blob[12:], purpose.encode()).decode()
