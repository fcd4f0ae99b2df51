"""The demo entry point: runs the station on wire-level simulators, with a picture of the wall.

This is the one place outside ``tests/`` and ``bench/`` that imports ``simulators``: it starts one
simulated lock bus per bank marked ``simulate = true`` (on a pty, spoken to through the real serial
driver) and the line-scanner simulator when the scanner is simulated, creates a demo courier on
first run, and mounts the simulator's wall page at ``/sim`` (where the resident's phone can show a
notice's QR code to the simulated scanner).
"""

from __future__ import annotations

import os
import time
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from hal.sms import LogSmsGateway
from lockers import accounts
from lockers.db import connect
from postkiosk.config import Config
from postkiosk.service import Station
from simulators.camera import SimulatedCamera, idle_frame
from simulators.device_panel import device_router
from simulators.escpos_printer import run_escpos_printer_sim
from simulators.idcard import run_idcard_sim
from simulators.line_scanner import RunningLineScannerSim, run_line_scanner_sim
from simulators.scale import run_scale_sim
from simulators.tspl_printer import run_tspl_printer_sim
from simulators.registry import run_simulator
from simulators.device_panel import wallet_router
from simulators.wall import wall_router

DEMO_LOGIN = "10000001"
DEMO_TECHNICIAN = "demo.tech"
DEMO_STAFF = "demo.staff"


@dataclass(frozen=True)
class DemoCredential:
    login: str
    pin: str
    created_now: bool


async def start_pay_gateway() -> tuple[Any, dict[str, Any]]:
    """The payment gateway simulator on loopback, with fresh keys, and the acquirer clients that talk
    to it through the same factory a real station's ``[payments.acquirers]`` goes through (every
    payment code the demo's wallets show is charged there, never anywhere real)."""
    from lockers.acquirers.factory import build_acquirers
    from simulators.pay_gateway import run_pay_gateway

    appid, mch_id = "wxdemo0000000001", "1900000001"
    key, agg_key = secrets.token_hex(16), secrets.token_hex(16)
    gateway = await run_pay_gateway(appid=appid, mch_id=mch_id, api_key=key, agg_key=agg_key)
    acquirers = build_acquirers({
        "wechat": {"protocol": "wechat-v2", "url": gateway.url, "appid": appid, "mch_id": mch_id, "api_key": key},
        "alipay": {"protocol": "alipay", "url": gateway.alipay_url, "app_id": gateway.alipay_app_id,
                   "private_key": gateway.app_private_key_pem, "alipay_public_key": gateway.alipay_public_key_pem},
        "ecny": {"protocol": "aggregator", "url": gateway.agg_url, "merchant_id": gateway.agg_merchant_id,
                 "key": gateway.agg_key},
    })
    return gateway, acquirers


def ensure_demo_courier(config: Config) -> DemoCredential:
    """A demo courier with a random PIN, made on first run. The PIN is stored hashed in the
    database; for the demo it is also kept in a 0600 file beside it so ``make run`` can show it."""
    return _ensure_demo_account(config, "courier", DEMO_LOGIN, "演示快递员", "DEMO", "demo-courier.txt",
                                lambda: f"{secrets.randbelow(10 ** 8):08d}")


def ensure_demo_technician(config: Config) -> DemoCredential:
    """A demo technician with a random password, made on first run (kept like the courier's PIN)."""
    return _ensure_demo_account(config, "technician", DEMO_TECHNICIAN, "演示技术员", "", "demo-technician.txt",
                                lambda: secrets.token_urlsafe(12))


def _ensure_demo_account(config: Config, role: str, login: str, name: str, carrier: str, note_name: str,
                         make_secret: Any) -> DemoCredential:
    folder = config.database.path.parent
    folder.mkdir(parents=True, exist_ok=True)
    note = folder / note_name
    conn = connect(config.database.path)
    try:
        exists = conn.execute("SELECT 1 FROM accounts WHERE login = ?", (login,)).fetchone()
        if exists and note.exists():
            saved_login, secret = note.read_text().split()
            return DemoCredential(saved_login, secret, False)
        secret = make_secret()
        conn.execute("BEGIN IMMEDIATE")
        if exists:  # the note was lost: a new secret, so the demo can show one
            conn.execute("UPDATE accounts SET secret_hash = ?, failed_logins = 0, locked_until = NULL"
                         " WHERE login = ?", (accounts.hash_secret(secret), login))
        else:
            accounts.create_account(conn, role=role, login=login, name=name, carrier=carrier, secret=secret,
                                    now=time.time(), actor="demo")
        conn.execute("COMMIT")
    finally:
        conn.close()
    fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{login} {secret}\n")
    return DemoCredential(login, secret, True)


def ensure_demo_staff(config: Config) -> DemoCredential:
    """A demo counter clerk (role staff: the queue's staff screen), made like the technician."""
    return _ensure_demo_account(config, "staff", DEMO_STAFF, "演示柜员", "", "demo-staff.txt",
                                lambda: secrets.token_urlsafe(12))


class DemoStation:
    """Simulators first, then the station talking to them over their ptys."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sims: dict[str, Any] = {}
        self.sms = LogSmsGateway() if config.sms.backend == "log" else None
        self.station: Station | None = None
        self.scanner_sim: RunningLineScannerSim | None = None
        self.device_sims: dict[str, Any] = {}  # ID-card reader, printers, scale: name -> running simulator
        self.camera: SimulatedCamera | None = None
        self.pay_gateway: Any = None  # the loopback payment gateway simulator (payments.simulate)
        self.acquirers: dict[str, Any] | None = None

    async def start_simulators(self) -> dict[str, str]:
        """Start the simulators; returns the lock banks' URLs (the scanner's is :attr:`scanner_sim`)."""
        for bank in self.config.banks:
            if bank.simulate:
                self.sims[bank.name] = await run_simulator(
                    bank.protocol, bank.boards, bank.doors_per_board, bank.polarity,
                    baudrate=bank.line_speed, byte_order=bank.status_byte_order)
        scanner = self.config.scanner
        if scanner is not None and scanner.simulate:
            self.scanner_sim = await run_line_scanner_sim("pty", suffix=scanner.suffix, aim_ids=scanner.aim_ids)
        cfg = self.config
        runners = {"idcard": (cfg.idcard, lambda: run_idcard_sim("pty")),
                   "receipt_printer": (cfg.receipt_printer, lambda: run_escpos_printer_sim("pty")),
                   "label_printer": (cfg.label_printer, lambda: run_tspl_printer_sim("pty")),
                   "scale": (cfg.scale, lambda: run_scale_sim("pty"))}
        for name, (section, run) in runners.items():
            if section is not None and section.simulate:
                self.device_sims[name] = await run()
        if cfg.camera is not None and cfg.camera.simulate:
            self.camera = SimulatedCamera([idle_frame()], loop=True)
        if cfg.payments.simulate:
            self.pay_gateway, self.acquirers = await start_pay_gateway()
        return {name: sim.url for name, sim in self.sims.items()}

    async def close_simulators(self) -> None:
        for sim in self.sims.values():
            await sim.close()
        if self.scanner_sim is not None:
            await self.scanner_sim.close()
        for sim in self.device_sims.values():
            await sim.close()
        if self.pay_gateway is not None:
            await self.pay_gateway.close()

    def app(self, urls: dict[str, str]) -> FastAPI:
        self.station = Station(self.config, bank_urls=urls, sms=self.sms,
                               scanner_url=self.scanner_sim.url if self.scanner_sim else None,
                               device_urls={name: sim.url for name, sim in self.device_sims.items()},
                               prebuilt={"camera": self.camera} if self.camera is not None else {},
                               acquirers=self.acquirers)
        app = self.station.app()
        specs = {(s.bank, s.board, s.channel): s.label for s in self.config.layout()}
        inbox = (lambda: list(reversed(self.sms.recent))) if isinstance(self.sms, LogSmsGateway) else None
        app.include_router(wall_router({name: s.sim for name, s in self.sims.items()}, inbox=inbox,
                                       labels=lambda bank, board, channel: specs.get((bank, board, channel)),
                                       scanner=self.scanner_sim))
        app.include_router(device_router(self.device_sims, self.camera))
        if self.pay_gateway is not None:
            app.include_router(wallet_router(self.pay_gateway, self.scanner_sim))
        return app

