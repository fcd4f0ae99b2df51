"""Builds and runs the station from its configuration: lock banks, database, custody, kiosk app, and
the code scanner with the task that routes its codes (only when a scanner is configured)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from hal.errors import HalError
from hal.lockbank import LockBank, lock_bank
from hal.scanner import CodeScanner, code_scanner
from hal.sms import SmsGateway, sms_gateway
from kiosk.app import Kiosk, create_app
from kiosk.scans import ScanRouter
from kiosk.sessions import Sessions
from kiosk.terminal import Terminal
from lockers.backup import run_daily
from lockers.custody import Custody
from lockers.db import Database
from lockers.diagnostics import Diagnostics
from lockers.doors import DoorMonitor
from lockers.errors import StorageError
from lockers.keys import DeviceKeys
from hal.netcheck import Reachability, endpoint
from lockers.station_ledger import CommissionTable, DailyClose, StationLedger, posting_kind
from lockers.payments import PaymentDesk
from lockers.posting import PostingDesk
from lockers.queue import QueueDesk, QueueSettings
from postkiosk.config import Config
from postkiosk.devices import build_devices

log = logging.getLogger(__name__)


@dataclass
class Station:
    """Everything one station runs. ``bank_urls`` and ``scanner_url`` replace configured URLs (the
    demo's simulators)."""

    config: Config
    bank_urls: dict[str, str] = field(default_factory=dict)
    sms: SmsGateway | None = None
    banks: dict[str, LockBank] = field(default_factory=dict)
    scanner_url: str | None = None
    device_urls: dict[str, str] = field(default_factory=dict)  # simulated devices' URLs (the demo)
    prebuilt: dict[str, object] = field(default_factory=dict)  # ready device objects (the demo's camera)
    acquirers: dict[str, Any] | None = None  # ready payment backends (the demo's, on its gateway simulator)

    def __post_init__(self) -> None:
        if self.sms is None:
            self.sms = self._make_sms()
        for bank in self.config.banks:
            url = self.bank_urls.get(bank.name) or bank.url
            if not url:
                raise SystemExit(f"bank {bank.name} is simulated, but no simulator is running for it")
            self.banks[bank.name] = lock_bank(bank.profile(url))
            pins = bank.gpio_pins()
            if pins is not None:  # boards with no door feedback: doors come from reed switches on GPIO
                from hal.doorsensors_gpio import GpioDoorSensors, WithGpioDoorSensors

                sensors = GpioDoorSensors(pins, polarity=bank.door_sensor_polarity)
                self.banks[bank.name] = WithGpioDoorSensors(self.banks[bank.name], sensors)
        self.scanner: CodeScanner | None = None
        if self.config.scanner is not None:
            url = self.scanner_url or self.config.scanner.url
            if not url:
                raise SystemExit("the scanner is simulated, but no simulator is running for it")
            self.scanner = code_scanner(self.config.scanner.backend, **self.config.scanner.options(url))
        self._scans: asyncio.Task[None] | None = None
        self.peripherals = build_devices(self.config, self.device_urls, self.prebuilt)
        self.db = Database(self.config.database.path)
        self.custody: Custody | None = None
        self.terminal: Terminal | None = None
        self.posting: PostingDesk | None = None
        self.payments: PaymentDesk | None = None
        self.network: Reachability | None = None
        self._reconciling: asyncio.Task[None] | None = None
        self.sessions = Sessions(idle_seconds=self.config.web.session_idle_seconds)
        if self.acquirers is None and self.config.payments.acquirers:
            from lockers.acquirers.factory import build_acquirers

            self.acquirers = build_acquirers(self.config.payments.acquirers)
        if self.config.payments.simulate and self.acquirers is None:
            raise SystemExit("payments are simulated, but no gateway simulator is running (use the demo)")

    def _make_sms(self) -> SmsGateway:
        cfg = self.config.sms
        if cfg.backend == "webhook":
            token = cfg.token_file.read_text().strip() if cfg.token_file else None
            return sms_gateway("webhook", url=cfg.url, timeout=cfg.timeout, token=token)
        return sms_gateway("log")

    async def start(self) -> None:
        """Open the database first: if it is not safe to keep custody in, no lock is touched and
        the kiosk shows a maintenance screen (T-A3)."""
        try:
            await self.db.open()
        except StorageError as err:
            log.error("refusing to serve: %s", err)
            self.kiosk.maintenance = str(err)
            return
        for bank in self.banks.values():
            await bank.open()
        for device in self.peripherals.values():
            await device.open()
        keys = self.keys = DeviceKeys.load_or_create(self.config.database.resolved_key_file)
        self.ledger = StationLedger(self.db, CommissionTable.from_config(self.config.payments.commissions)
                                    if self.config.payments.commissions else None, timezone=self.kiosk.timezone,
                                    credit_limit_fen=self.config.payments.credit_limit_fen)
        self.kiosk.daily_close = DailyClose(self.ledger, self.acquirers or {},
                                            station_id=self.config.payments.station_id)
        self.custody = Custody(db=self.db, keys=keys, layout=self.config.layout(),
                               doors=DoorMonitor(self.banks), sms=self.sms,
                               settings=self.config.custody_settings())
        await self.custody.start()
        self._backups = asyncio.create_task(
            run_daily(self.db, self.config.database.resolved_backup_dir, keep=self.config.database.backups_kept),
            name="daily-backup")
        self.terminal = Terminal(self.custody, result_seconds=self.config.station.result_seconds)
        await self.terminal.start()
        self.kiosk.custody, self.kiosk.terminal = self.custody, self.terminal
        from hal.speech import speech_engine

        self.kiosk.speech = speech_engine("espeak-ng", cache_dir=self.config.database.path.parent / "voice")
        self.kiosk.diagnostics = Diagnostics(self.custody, devices=self.devices(),
                                             config_summary=self.config_summary)
        if self.acquirers:
            await self._start_payments()
        if self.config.posting.enabled:
            self.posting = self._posting_desk(keys)
            await self.posting.start()
            self.kiosk.posting = self.posting
        p = self.peripherals
        self.kiosk.queue = QueueDesk(
            self.db, settings=QueueSettings(tz=ZoneInfo(self.kiosk.timezone), station_name=self.config.station.name),
            reader=p["idcard"].device if "idcard" in p else None,
            receipt_printer=p["receipt_printer"].device if "receipt_printer" in p else None)
        if self.scanner is not None:
            router = ScanRouter(self.custody, self.terminal, payments=self.kiosk.take_payment_code,
                                on_fee=self.kiosk.pay.offer_fee, rules=self.config.payments.code_rules())
            self._scans = asyncio.create_task(self._route_scans(router), name="scanner")

    async def _start_payments(self) -> None:
        """The payment desk, and the task that drives orders a power cut left open to a final state:
        at once, then every ``reconcile_seconds`` (for reverses that keep failing). It runs in the
        background (a reverse waits until 15 s after its pay call): no service depends on it, since
        a service is only ever given in the transaction that commits ``paid``, which reconciliation
        never does; a new payment for a service whose order is still open is refused meanwhile."""
        assert self.acquirers is not None
        cfg = self.config.payments
        self.network = Reachability([endpoint(a.endpoint) for a in self.acquirers.values()],
                                    interval=cfg.check_seconds)
        await self.network.start()
        self.payments = PaymentDesk(self.db, self.acquirers, settings=cfg.settings(self.kiosk.timezone),
                                    online=self.network.online)
        self.kiosk.payments = self.payments
        if cfg.biller == "simulated":
            from lockers.bills import BillDesk, SimulatedBiller

            self.kiosk.bills = BillDesk(self.db, self.keys, self.payments, self.ledger, SimulatedBiller())
            try:  # before any bill can be paid: a bill caught mid-credit by a power cut is settled
                for bill in await self.kiosk.bills.recover():
                    log.warning("bill %s (order %s) left paid by a restart: now %s", bill["bill_id"],
                                bill["order_no"], bill["state"])
            except Exception:
                log.exception("bills: recovery at start-up failed; staff see them as needing attention")
        if "receipt_printer" in self.peripherals:
            self.kiosk.receipt_printer = self.peripherals["receipt_printer"].device
        self._reconciling = asyncio.create_task(self._reconcile_payments(cfg.reconcile_seconds),
                                                name="payment-reconcile")

    async def _reconcile_payments(self, every: float) -> None:
        assert self.payments is not None
        while True:
            try:
                await self.payments.reconcile()
            except Exception:  # the next pass tries again
                log.exception("payment reconciliation failed")
            await asyncio.sleep(every)

    def _posting_desk(self, keys: DeviceKeys) -> PostingDesk:
        """The posting flow on this station's devices; the surveillance gate is the camera's health."""
        assert self.custody is not None and self.terminal is not None
        p = self.peripherals
        camera = p.get("camera")

        async def surveillance() -> tuple[bool, str]:
            if camera is None:
                return False, "no surveillance camera configured"
            health = await camera.health()
            return bool(health.get("ok")), str(health.get("detail") or health.get("error") or "")

        desk = PostingDesk(db=self.db, keys=keys, custody=self.custody, settings=self.config.posting_settings(),
                           reader=p["idcard"].device if "idcard" in p else None,
                           scale=p["scale"].device if "scale" in p else None,
                           label_printer=p["label_printer"].device if "label_printer" in p else None,
                           receipt_printer=p["receipt_printer"].device if "receipt_printer" in p else None,
                           surveillance=surveillance, payments=self.payments)
        terminal = self.terminal

        def shown(view: dict[str, object]) -> None:
            if view.get("step") == "refused":
                terminal.show_result("posting_refused", "error", flow="posting", reason=view.get("reason"))
            else:
                terminal.publish("posting", view)

        desk.subscribe(shown)
        ledger = self.ledger

        def accrue(conn: object, row: Any) -> None:  # the commission, in the transaction that accepts it
            ledger.accrue_for_posting(conn, row["id"], posting_kind(row["category"]), row["price_fen"],  # type: ignore[arg-type]
                                      quantity=int(row["quantity"] or 1))

        desk.on_paid = accrue

        def door(ticket: object) -> None:
            live = desk.live
            terminal.door_flow("posting", ticket, large_print=bool(live and live.elderly))  # type: ignore[arg-type]

        desk.on_door = door
        self.kiosk.timezone = desk.settings.schedule.tz.key
        return desk

    async def _route_scans(self, router: ScanRouter) -> None:
        """Read codes for as long as the station runs; a scanner that fails or is unplugged is
        opened again every ``reconnect_seconds`` (each failure is logged once per attempt)."""
        assert self.scanner is not None and self.config.scanner is not None
        while True:
            try:
                await self.scanner.open()
                log.info("scanner ready: %s", self.scanner.describe())
                await router.run(self.scanner)
            except HalError as err:
                log.warning("scanner: %s; trying again in %.0f s", err, self.config.scanner.reconnect_seconds)
            except Exception:  # a bug in routing must not end scanning for good
                log.exception("scanner: routing failed")
            await self.scanner.close()
            await asyncio.sleep(self.config.scanner.reconnect_seconds)

    async def stop(self) -> None:
        if self._scans is not None:
            self._scans.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scans
            self._scans = None
        if self.scanner is not None:
            await self.scanner.close()
        if getattr(self, "_backups", None):
            self._backups.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._backups
        if self.posting is not None:
            await self.posting.stop()
        if self._reconciling is not None:
            self._reconciling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciling
        if self.network is not None:
            await self.network.stop()
        for acquirer in (self.acquirers or {}).values():
            with contextlib.suppress(Exception):
                await acquirer.aclose()
        if self.terminal:
            await self.terminal.stop()
        if self.custody:
            await self.custody.stop()
        await self.db.close()
        for bank in self.banks.values():
            await bank.close()  # closing a bank that was never opened does nothing
        for device in self.peripherals.values():
            await device.close()
        if self.sms:
            await self.sms.close()

    def devices(self) -> dict[str, object]:
        """The station's devices other than lock banks, by role, for diagnostics."""
        out: dict[str, object] = {}
        if self.scanner is not None:
            out["scanner"] = self.scanner
        out.update(self.peripherals)
        return out

    def config_summary(self) -> dict[str, object]:
        """The configuration without secrets or personal data, for the support bundle."""
        cfg = self.config
        return {
            "station": cfg.station.name, "source": str(cfg.source),
            "banks": [{"name": b.name, "protocol": b.protocol, "boards": list(b.boards), "simulated": b.simulate}
                      for b in cfg.banks],
            "compartments": len(cfg.layout()),
            "scanner": cfg.scanner.backend if cfg.scanner else None,
            "devices": {name: device.describe() for name, device in self.peripherals.items()},
            "sms": cfg.sms.backend,
            "web": {"host": cfg.web.host, "port": cfg.web.port, "tls": cfg.web.tls_certfile is not None,
                    "session_idle_seconds": cfg.web.session_idle_seconds},
            # channels and protocols only: no keys, no merchant secrets
            "payments": {"channels": {ch: type(a).__name__ for ch, a in (self.acquirers or {}).items()},
                         "simulated": cfg.payments.simulate, "biller": cfg.payments.biller,
                         "network": None if self.network is None else self.network.online()},
        }

    def app(self) -> FastAPI:
        """The web app; the station starts with the app's lifespan."""
        self.kiosk = Kiosk(custody=None, terminal=None, sessions=self.sessions,  # type: ignore[arg-type]
                           station_name=self.config.station.name, station_phone=self.config.station.phone,
                           opening_hours=self.config.station.opening_hours,
                           idle_seconds=self.config.station.idle_seconds)
        return create_app(self.kiosk, on_start=self.start, on_stop=self.stop, api_docs=self.config.web.api_docs)

