#!/usr/bin/env python3
"""Camera code-reader benchmark (issue 7): the project's pipeline against the bare decoders, same
frames, same run.

Frames are generated (``simulators.camera``; fixed seeds, so every run sees the same frames) at
640x480 and 1280x720, BGR as a camera gives them.

1. Idle frames (the empty counter, sensor noise sigma 3..16): time per frame of the whole camera
   path (simulated camera -> ``CameraScanner.read`` -> decoder in its worker thread -> presence rule)
   against bare zxing-cpp restricted to QR + Code 128 on the same frames. Target: ratio <= 1.2.
   Timed in interleaved blocks (bare, pipeline, bare, ...) and compared by medians, so a busy machine
   slows both alike. Also shown: the decoder alone, and zxing-cpp handed an already grey frame.
2. Decode rates, bare zxing-cpp (restricted formats) / pyzbar (restricted symbols) / the pipeline:
   * noisy QR: 3.5 px per module, noise sigma 12..24, blur 1.0, turned -20..20 degrees;
   * small QR: 1.8..2.4 px per module (the smallest a QR code can be and still be resolved; the
     line "small QR by module size" shows where each decoder stops, below that too);
   * Code 128 waybills (SF/YT/JT/S10 numbers) tilted 8, 15 and 30 degrees (either way), noise
     sigma 12, bars a fifth as tall as the symbol is wide, 2 px per module at 640x480 and 3 at
     1280x720. Targets: QR sets >= 95 %, Code 128 at 30 degrees >= 90 %.
   A read counts when the expected text is among the results; any other text is a false read.

Run: .venv/bin/python bench/camera.py [--frames N] [--idle-frames N] [--reps N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import zxingcpp  # noqa: E402
from pyzbar import pyzbar  # noqa: E402

from hal.camera_scanner import CameraScanner  # noqa: E402
from hal.code_decoder import CodeDecoder  # noqa: E402
from simulators.camera import SimulatedCamera, code128_frame, idle_frame, qr_frame, waybill_number  # noqa: E402

SIZES = ((640, 480), (1280, 720))
FORMATS = (zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.Code128)
SYMBOLS = [pyzbar.ZBarSymbol.QRCODE, pyzbar.ZBarSymbol.CODE128]
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def bare_zxing(frame: np.ndarray) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(frame, formats=FORMATS)]


def bare_pyzbar(frame: np.ndarray) -> list[str]:
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return [d.data.decode("utf-8", "replace") for d in pyzbar.decode(gray, symbols=SYMBOLS)]


def notice(seed: int) -> str:
    """The link of a pickup notice: what its QR code holds."""
    rng = np.random.default_rng(seed + 10_000)
    return "https://pk.example.cn/p/PK1-" + "".join(BASE32[i] for i in rng.integers(0, 32, 26))


# 1. idle frames ---------------------------------------------------------------------------------


async def idle_cost(size: tuple[int, int], frames: int, reps: int) -> float:
    idle = [idle_frame(size=size, seed=s, noise=(3, 6, 10, 16)[s % 4]) for s in range(frames)]
    grey = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in idle]
    decoder = CodeDecoder()
    camera = SimulatedCamera(idle, loop=True, size=size, stall_timeout=5.0)
    scanner = CameraScanner(camera, decoder=decoder, absent_frames=5)
    whole, alone, on_grey = [], [], []  # per block: time per frame / bare zxing-cpp's in the block before
    bare_ms = []
    await scanner.open()
    try:
        for f in idle:  # warm up every path
            bare_zxing(f)
            decoder.decode(f)
        await scanner.read(timeout=0.01)
        for _ in range(reps):
            t0 = time.perf_counter()
            for f in idle:
                bare_zxing(f)
            bare = (time.perf_counter() - t0) / frames
            bare_ms.append(bare * 1000)
            # the whole path reads frames for as long as the bare block took: time per frame decoded
            start = scanner.frames_decoded
            t0 = time.perf_counter()
            if await scanner.read(timeout=bare * frames) is not None:
                raise AssertionError("a code was read on an idle frame")
            whole.append((time.perf_counter() - t0) / max(1, scanner.frames_decoded - start) / bare)
            t0 = time.perf_counter()
            for f in idle:
                decoder.decode(f)
            alone.append((time.perf_counter() - t0) / frames / bare)
            t0 = time.perf_counter()
            for g in grey:
                bare_zxing(g)
            on_grey.append(whole[-1] * bare / ((time.perf_counter() - t0) / frames))
    finally:
        await scanner.close()
    ratio = statistics.median(whole)
    print(f"idle {size[0]}x{size[1]}: bare zxing-cpp {statistics.median(bare_ms):.2f} ms/frame; whole camera path "
          f"ratio {ratio:.3f} (target <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'}; {reps} blocks, quartiles {_quartiles(whole)}); decoder alone "
          f"{statistics.median(alone):.3f}; against zxing-cpp on a ready grey frame {statistics.median(on_grey):.3f}")
    return ratio


def _quartiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    q = statistics.quantiles(values, n=4)
    return f"{q[0]:.2f}..{q[2]:.2f}"


# 2. decode rates --------------------------------------------------------------------------------


def sets(size: tuple[int, int], n: int) -> dict[str, tuple[list[np.ndarray], list[str]]]:
    out = {}
    rng = np.random.default_rng(size[0])
    texts = [notice(s) for s in range(n)]
    out["noisy QR"] = ([qr_frame(texts[s], size=size, module=3.5, angle=float(rng.uniform(-20, 20)),
                                 noise=float(rng.uniform(12, 24)), blur=1.0, lighting=0.5, seed=s)
                        for s in range(n)], texts)
    out["small QR"] = ([qr_frame(texts[s], size=size, module=float(rng.uniform(1.8, 2.4)),
                                 angle=float(rng.uniform(-20, 20)), noise=6.0, seed=1000 + s)
                        for s in range(n)], texts)
    module = 2.0 if size[0] <= 640 else 3.0
    for angle in (8, 15, 30):
        waybills = [waybill_number(angle * 1000 + s) for s in range(n)]
        out[f"Code 128 at {angle} deg"] = ([code128_frame(waybills[s], angle=angle if s % 2 else -angle, size=size,
                                                         module=module, noise=12.0, seed=2000 + s)
                                           for s in range(n)], waybills)
    return out


def rates(frames: list[np.ndarray], texts: list[str], decoder: CodeDecoder) -> dict[str, tuple[float, int, float]]:
    """decoder name -> (read share, false reads, ms per frame)."""
    out = {}
    for name, read in (("zxing-cpp", bare_zxing), ("pyzbar", bare_pyzbar),
                       ("pipeline", lambda f: [d.text for d in decoder.decode(f)])):
        hits = wrong = 0
        t0 = time.perf_counter()
        for frame, text in zip(frames, texts):
            got = read(frame)
            hits += text in got
            wrong += sum(1 for t in got if t != text)
        out[name] = (hits / len(frames), wrong, (time.perf_counter() - t0) / len(frames) * 1000)
    return out


def decode_rates(size: tuple[int, int], n: int) -> None:
    decoder = CodeDecoder()
    print(f"decode rates {size[0]}x{size[1]}, {n} frames a set (read share, false reads, ms per frame):")
    for name, (frames, texts) in sets(size, n).items():
        r = rates(frames, texts, decoder)
        target = {"noisy QR": 0.95, "small QR": 0.95, "Code 128 at 30 deg": 0.90}.get(name)
        cells = "; ".join(f"{k} {v[0] * 100:5.1f} %{f' ({v[1]} false)' if v[1] else ''} {v[2]:6.1f} ms"
                          for k, v in r.items())
        verdict = "" if target is None else f"  [target >= {target * 100:.0f} %: " \
                                            f"{'met' if r['pipeline'][0] >= target else 'NOT met'}]"
        print(f"  {name:20s} {cells}{verdict}")
    # where each decoder stops on small QR codes (a quarter of the frames a set: an outline)
    m = max(1, n // 4)
    texts = [notice(s) for s in range(m)]
    cells = []
    for module in (1.6, 1.7, 1.8, 2.0, 2.2):
        frames = [qr_frame(texts[s], size=size, module=module, angle=float((s * 7) % 40 - 20), noise=6.0,
                           seed=3000 + s) for s in range(m)]
        r = rates(frames, texts, decoder)
        cells.append(f"{module} px: " + "/".join(f"{r[k][0] * 100:.0f}" for k in ("zxing-cpp", "pyzbar", "pipeline")))
    print(f"  small QR by module size, {m} frames each (% read, zxing-cpp/pyzbar/pipeline): {'; '.join(cells)}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100, help="frames in each decode-rate set")
    parser.add_argument("--idle-frames", type=int, default=32, help="distinct idle frames")
    parser.add_argument("--reps", type=int, default=21, help="interleaved timing blocks over the idle frames")
    args = parser.parse_args()
    for size in SIZES:
        await idle_cost(size, args.idle_frames, args.reps)
    for size in SIZES:
        decode_rates(size, args.frames)


if __name__ == "__main__":
    asyncio.run(main())
