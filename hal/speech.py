"""Speech: screen prompts rendered to WAV by an offline text-to-speech engine.

Subclasses must override ``_render(text, voice) -> bytes`` (a complete RIFF/WAVE file) and may
override ``cache_tag`` (whatever changes the sound besides text and voice, so a changed setting never
serves a stale recording). The base class holds the shared policy: argument checks, a bounded cache by
(engine settings, voice, text) in memory and optionally on disk, a limit on concurrent renders, and a
check that what came back is real, non-empty audio.

Backends (``BACKENDS``): ``espeak-ng`` (Debian package ``espeak-ng``; runs as a subprocess, no shell,
the text goes in on stdin). A neural voice (Piper, sherpa-onnx) would be one more backend here; its model
must be provisioned on the station, never downloaded at run time (kiosk-ux-and-stack.md §9.4).

Voice names belong to the engine. For espeak-ng 1.51 (Debian 12), Mandarin is ``cmn-latn-pinyin``: the
plain ``cmn`` voice hands its pinyin to the English voice and says 好 as "hao two"
(espeak-ng/espeak-ng#1236). Cantonese is ``yue``; English is ``en``.

The text of a prompt is never logged: only its length and voice.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import hashlib
import importlib
import io
import logging
import os
import re
import shutil
import struct
import time
import wave
from pathlib import Path
from typing import Any

from hal.errors import DeviceIOError, DeviceTimeout, DeviceUnavailable

log = logging.getLogger(__name__)

#: longest text one prompt may have, in characters (a screen's instruction, not a book)
MAX_CHARS = 600
_VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+/-]{0,63}")


class Speech(abc.ABC):
    """Renders a prompt to WAV bytes.

    ``cache_items``: how many recent renders stay in memory (0: none). ``cache_dir``: if set, renders
    are also kept there as ``<sha256>.wav`` (at most ``cache_files``, the oldest pruned), so fixed prompts
    survive a restart. ``concurrency``: renders running at once; more wait their turn.
    """

    def __init__(self, *, cache_items: int = 128, cache_dir: Path | str | None = None, cache_files: int = 2000,
                 concurrency: int = 2) -> None:
        if cache_items < 0 or cache_files < 1 or concurrency < 1:
            raise ValueError("cache_items must be >= 0, cache_files and concurrency >= 1")
        self.cache_items = cache_items
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.cache_files = cache_files
        self._memory: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._slots = asyncio.Semaphore(concurrency)

    @property
    def cache_tag(self) -> str:
        """The engine and its settings, part of every cache key."""
        return type(self).__name__

    async def render(self, text: str, voice: str) -> bytes:
        """The prompt ``text`` spoken by ``voice``, as a WAV file.

        Raises ``ValueError`` for empty or overlong text or a malformed voice name,
        ``DeviceUnavailable`` when the engine or the voice is not installed, ``DeviceTimeout`` when
        it takes too long and ``DeviceIOError`` when it fails or returns no audio.
        """
        text = " ".join(text.split())
        if not text:
            raise ValueError("nothing to say: the prompt text is empty")
        if len(text) > MAX_CHARS:
            raise ValueError(f"prompt text too long: {len(text)} characters, at most {MAX_CHARS}")
        if not _VOICE_NAME.fullmatch(voice):
            raise ValueError(f"not a voice name: {voice!r}")
        key = hashlib.sha256(f"{self.cache_tag}\0{voice}\0{text}".encode()).hexdigest()
        cached = self._memory.get(key) or await self._read_disk(key)
        if cached is not None:
            self._remember(key, cached)
            return cached
        async with self._slots:
            started = time.monotonic()
            data = await self._render(text, voice)
        data = checked_wav(data)
        log.debug("speech: %d characters with voice %s in %.0f ms", len(text), voice,
                  (time.monotonic() - started) * 1000)
        self._remember(key, data)
        await self._write_disk(key, data)
        return data

    async def check(self) -> None:
        """Raise ``DeviceUnavailable`` if the engine is not installed (call at start-up, so a station
        without it says so in its log rather than at the first prompt). Default: nothing to check."""

    def _remember(self, key: str, data: bytes) -> None:
        if self.cache_items == 0:
            return
        self._memory[key] = data
        self._memory.move_to_end(key)
        while len(self._memory) > self.cache_items:
            self._memory.popitem(last=False)

    async def _read_disk(self, key: str) -> bytes | None:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key}.wav"
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None
        except OSError as err:  # a bad cache is not a reason to stay silent: render again
            log.warning("speech: cannot read cached prompt %s: %s", path.name, err)
            return None

    async def _write_disk(self, key: str, data: bytes) -> None:
        if self.cache_dir is None:
            return
        try:
            await asyncio.to_thread(self._store, key, data)
        except OSError as err:
            log.warning("speech: cannot cache prompt in %s: %s", self.cache_dir, err)

    def _store(self, key: str, data: bytes) -> None:
        assert self.cache_dir is not None
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        final = self.cache_dir / f"{key}.wav"
        partial = final.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(data)
        os.replace(partial, final)  # readers see the whole file or none
        files = sorted(self.cache_dir.glob("*.wav"), key=lambda p: p.stat().st_mtime)
        for old in files[:max(0, len(files) - self.cache_files)]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()

    @abc.abstractmethod
    async def _render(self, text: str, voice: str) -> bytes: ...


class EspeakSpeech(Speech):
    """espeak-ng as a subprocess: ``espeak-ng -v VOICE -s SPEED -b 1 --stdout`` with the text on stdin.

    ``binary``: program name or path. ``speed``: words per minute (espeak's default is 175; slower is
    easier for older residents). ``pitch``: 0 to 99, None keeps the voice's own. ``timeout``: seconds
    one render may take before the process is killed.
    """

    def __init__(self, *, binary: str = "espeak-ng", speed: int = 150, pitch: int | None = None,
                 timeout: float = 10.0, **options: Any) -> None:
        super().__init__(**options)
        if not 80 <= speed <= 450:
            raise ValueError(f"espeak-ng speed must be 80 to 450 words per minute, not {speed}")
        if pitch is not None and not 0 <= pitch <= 99:
            raise ValueError(f"espeak-ng pitch must be 0 to 99, not {pitch}")
        self.binary = binary
        self.speed = speed
        self.pitch = pitch
        self.timeout = timeout

    @property
    def cache_tag(self) -> str:
        return f"espeak-ng:{self.speed}:{self.pitch}"

    async def check(self) -> None:
        if shutil.which(self.binary) is None:
            raise DeviceUnavailable(self._missing())

    def _missing(self) -> str:
        return (f"text-to-speech engine {self.binary!r} not found: install the Debian package espeak-ng "
                "(scripts/setup.sh does)")

    async def _render(self, text: str, voice: str) -> bytes:
        argv = [self.binary, "-v", voice, "-s", str(self.speed), "-b", "1", "--stdout"]
        if self.pitch is not None:
            argv += ["-p", str(self.pitch)]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
        except (FileNotFoundError, PermissionError, NotADirectoryError) as err:
            raise DeviceUnavailable(self._missing()) from err
        try:
            out, err_out = await asyncio.wait_for(proc.communicate(text.encode("utf-8") + b"\n"), self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise DeviceTimeout(f"espeak-ng took more than {self.timeout} s for one prompt") from None
        stderr = err_out.decode("utf-8", "replace").strip()
        if "voice does not exist" in stderr:
            raise DeviceUnavailable(f"espeak-ng has no voice {voice!r} (list them: espeak-ng --voices)")
        if proc.returncode != 0:
            raise DeviceIOError(f"espeak-ng failed (exit status {proc.returncode}): {stderr[-200:]}")
        return out


def checked_wav(data: bytes) -> bytes:
    """``data`` as a well-formed WAV with at least one frame of audio, else ``DeviceIOError``.

    espeak-ng writes to a pipe before it knows the length, so its RIFF and data sizes are placeholders
    (0x7fff…); they are set here to the bytes that really came, which every player then agrees on.
    """
    data = _fix_streamed_sizes(data)
    try:
        with wave.open(io.BytesIO(data)) as wav:
            frames = wav.getnframes()
    except (wave.Error, EOFError) as err:
        raise DeviceIOError(f"the speech engine returned no valid WAV: {err}") from err
    if frames == 0:
        raise DeviceIOError("the speech engine returned no audio")
    return data


def _fix_streamed_sizes(data: bytes) -> bytes:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data
    out = bytearray(data)
    struct.pack_into("<I", out, 4, len(out) - 8)
    pos = 12
    while pos + 8 <= len(out):
        chunk, size = out[pos:pos + 4], struct.unpack_from("<I", out, pos + 4)[0]
        if chunk == b"data":
            struct.pack_into("<I", out, pos + 4, len(out) - pos - 8)
            break
        pos += 8 + size + (size & 1)
    return bytes(out)


BACKENDS: dict[str, str] = {
    "espeak-ng": "hal.speech:EspeakSpeech",
}


def speech_engine(backend: str, **options: Any) -> Speech:
    """The text-to-speech backend named in the station's configuration."""
    try:
        module_name, _, class_name = BACKENDS[backend].partition(":")
    except KeyError:
        raise DeviceUnavailable(f"unknown speech backend {backend!r}; known: {', '.join(sorted(BACKENDS))}") from None
    engine: Speech = getattr(importlib.import_module(module_name), class_name)(**options)
    return engine
