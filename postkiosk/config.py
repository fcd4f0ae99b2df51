"""The station's configuration: one TOML file, overridden by environment variables.

Order of precedence, highest first:

1. environment variables ``POSTKIOSK_<SECTION>__<KEY>`` (for example ``POSTKIOSK_WEB__PORT=8081``,
   ``POSTKIOSK_DATABASE__PATH=/data/postkiosk.sqlite3``);
2. the TOML file named by ``POSTKIOSK_CONFIG`` (or passed with ``--config``);
3. the built-in demo configuration: one simulated Kerong CU16 bank of 2 boards x 16 doors with
   mixed sizes, a simulated serial QR scanner, a SQLite file under ``var/``, the web UI on
   127.0.0.1:8080, SMS to the log.

A configuration file without a ``[scanner]`` section has no scanner: nothing reads codes.

It is loaded and validated once at start-up into frozen objects.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hal import scanner as hal_scanner
from hal.lockbank import BACKENDS, DEFAULT_BAUDRATE, BankProfile, Polarity, StatusByteOrder
from lockers.custody import SIZES, CompartmentSpec, CustodySettings

DEMO_SIZES = "S S S S M M M M L L L L XL XL S M"
DEMO_SCANNER = {"backend": "serial-line", "simulate": True}
#: every device of the built-in demo, each on its wire-level simulator
DEMO_DEVICES = {
    "scanner": DEMO_SCANNER,
    "idcard": {"simulate": True},
    "receipt_printer": {"protocol": "escpos", "profile": "receipt-80mm", "simulate": True},
    "label_printer": {"protocol": "tspl", "profile": "label-76x130", "simulate": True},
    "scale": {"simulate": True},
    "camera": {"simulate": True},
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StationConfig(_Frozen):
    name: str = "幸福里社区邮政服务点"
    address: str = ""
    phone: str = ""
    opening_hours: str = "08:00-20:00"
    free_storage_hours: float = Field(24.0, gt=0)
    #: storage fee per started day after the free period, in fen (0: storage is always free), capped
    fee_per_day_fen: int = Field(0, ge=0, le=10_000)
    fee_cap_fen: int = Field(300, ge=0, le=100_000)
    idle_seconds: float = Field(60.0, ge=20, le=600)  # a page left alone this long asks "still there?"
    result_seconds: float = Field(10.0, ge=3, le=120)  # how long a result screen stays before home


class DatabaseConfig(_Frozen):
    path: Path = Path("var/postkiosk.sqlite3")
    key_file: Path | None = None  # default: device.key beside the database
    backup_dir: Path | None = None  # default: backups/ beside the database
    backups_kept: int = Field(7, ge=1)

    @property
    def resolved_key_file(self) -> Path:
        return self.key_file or self.path.with_name("device.key")

    @property
    def resolved_backup_dir(self) -> Path:
        return self.backup_dir or self.path.parent / "backups"


class WebConfig(_Frozen):
    """Where the web app listens. Only loopback by default (T-H2): the kiosk's own browser is on the
    same machine. Listening on any other address (a technician's tablet on the station LAN) is a
    deliberate choice and needs ``tls_certfile`` and ``tls_keyfile``: staff logins never cross a
    network in clear text."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    session_idle_seconds: float = Field(120.0, gt=0, le=120.0)
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    api_docs: bool = False  # /docs, /redoc, /openapi.json: on in the demo, off on a real station (T-H2)

    @property
    def loopback_only(self) -> bool:
        return is_loopback(self.host)

    @model_validator(mode="after")
    def _lan_needs_tls(self) -> WebConfig:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("web.tls_certfile and web.tls_keyfile go together")
        if not self.loopback_only and self.tls_certfile is None:
            raise ValueError(f"web.host = {self.host!r} exposes the kiosk beyond this machine: set "
                             "web.tls_certfile and web.tls_keyfile, or keep host = '127.0.0.1'")
        return self


def is_loopback(host: str) -> bool:
    """True for addresses only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SmsConfig(_Frozen):
    backend: Literal["log", "webhook"] = "log"
    url: str | None = None
    token_file: Path | None = None
    timeout: float = 10.0

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> SmsConfig:
        if self.backend == "webhook" and not self.url:
            raise ValueError("sms.backend = 'webhook' needs sms.url")
        return self


class SerialDeviceConfig(_Frozen):
    """A device on a serial or USB-CDC port: ``url`` is anything ``serial.serial_for_url`` opens;
    ``simulate = true`` makes ``postkiosk run`` start its wire-level simulator on a pty instead.
    ``baudrate``: None for what the device ships with."""

    url: str | None = None
    simulate: bool = False
    baudrate: int | None = None

    @model_validator(mode="after")
    def _needs_url(self) -> SerialDeviceConfig:
        if not self.simulate and not self.url:
            raise ValueError("give a url, or simulate = true")
        return self


class IdCardConfig(SerialDeviceConfig):
    """The second-generation ID card reader (SAM module, 115200 8N1)."""

    backend: Literal["samv-serial"] = "samv-serial"


class PrinterConfig(SerialDeviceConfig):
    """A thermal printer: ``protocol`` "escpos" (receipts) or "tspl" (labels); ``profile`` names the
    paper: "receipt-80mm", "receipt-58mm", "label-76x130", "label-100x150"."""

    protocol: Literal["escpos", "tspl"] = "escpos"
    profile: str | None = None


class ScaleConfig(SerialDeviceConfig):
    """A scale streaming ``ST,GS,+  1.234kg`` lines."""

    backend: Literal["serial-lines"] = "serial-lines"


class CameraConfig(_Frozen):
    """The surveillance camera (posting is refused while it is down). ``source``: what OpenCV opens, a
    device index (0 = /dev/video0), a path or a stream URL. ``simulate = true``: the demo plays
    generated frames instead."""

    backend: Literal["opencv"] = "opencv"
    source: int | str = 0
    simulate: bool = False


class ScannerConfig(_Frozen):
    """The QR/barcode scanner residents show their pickup notice to. ``url`` is anything
    ``serial.serial_for_url`` opens (``/dev/serial/by-id/usb-...``, ``/dev/ttyACM0``); ``simulate =
    true`` makes ``postkiosk run`` start the wire-level scanner simulator on a pty instead.

    ``suffix``: what the scanner sends after a code ("cr", "lf", "crlf"; all three are accepted) or
    "none", in which case a code ends after ``inter_char_timeout`` seconds of silence. ``aim_ids``:
    the scanner prefixes AIM symbology identifiers (``]Q1``...), which are stripped.
    ``baudrate`` is ignored by USB-CDC scanners. ``reconnect_seconds``: wait before opening the
    scanner again after it was unplugged."""

    backend: str = "serial-line"
    url: str | None = None
    simulate: bool = False
    baudrate: int = 9600
    suffix: Literal["cr", "lf", "crlf", "none"] = "cr"
    inter_char_timeout: float = Field(0.1, gt=0, le=5)
    aim_ids: bool = False
    reconnect_seconds: float = Field(5.0, gt=0)

    @field_validator("backend")
    @classmethod
    def _backend_known(cls, value: str) -> str:
        if value not in hal_scanner.BACKENDS:
            raise ValueError(f"unknown scanner backend {value!r}; known: {', '.join(sorted(hal_scanner.BACKENDS))}")
        return value

    @model_validator(mode="after")
    def _needs_url(self) -> ScannerConfig:
        if not self.simulate and not self.url:
            raise ValueError("scanner: give a url, or simulate = true")
        return self

    def options(self, url: str | None = None) -> dict[str, Any]:
        """Keyword arguments of ``hal.scanner.code_scanner(self.backend, **options)``."""
        return {"url": url or self.url, "baudrate": self.baudrate, "suffix": self.suffix,
                "inter_char_timeout": self.inter_char_timeout, "aim_ids": self.aim_ids}


class BankConfig(_Frozen):
    """One lock bus. ``url`` is anything ``serial.serial_for_url`` opens; ``simulate = true`` makes
    ``postkiosk run`` start the wire-level simulator on a pty and use that instead."""

    name: str = Field(pattern=r"^[A-Z]$")
    protocol: str = "kerong-cu16"
    url: str | None = None
    simulate: bool = False
    baudrate: int | None = None  # None: what the protocol's boards ship with
    boards: tuple[int, ...] = (0, 1)
    doors_per_board: int = Field(16, ge=1, le=64)
    polarity: Polarity = Polarity.CLOSED_IS_1
    status_byte_order: StatusByteOrder = StatusByteOrder.FIRST_BYTE_FIRST
    pulse_ms: int = Field(500, ge=50, le=10000)
    reply_timeout: float = Field(0.3, gt=0)
    has_item_sensors: bool = True
    sizes: tuple[str, ...] = (DEMO_SIZES,)
    """Per board, the door sizes in channel order, space separated; one entry applies to every board."""
    door_sensor_pins: tuple[tuple[int | str, ...], ...] | None = None
    """For boards with no door feedback: per board, the GPIO pin of each door's reed switch (gpiozero
    names such as 17, "GPIO17", "BOARD11"); the doors are then read from the pins."""
    door_sensor_polarity: Polarity = Polarity.CLOSED_IS_0  # reed switch to GND: closed door pulls low

    @field_validator("sizes")
    @classmethod
    def _sizes_known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            for size in entry.split():
                if size not in SIZES:
                    raise ValueError(f"unknown door size {size!r}; use {', '.join(SIZES)}")
        return value

    @field_validator("protocol")
    @classmethod
    def _protocol_known(cls, value: str) -> str:
        if value not in BACKENDS:
            raise ValueError(f"unknown lock protocol {value!r}; known: {', '.join(sorted(BACKENDS))}")
        return value

    @property
    def line_speed(self) -> int:
        return self.baudrate or DEFAULT_BAUDRATE.get(self.protocol, 9600)

    @model_validator(mode="after")
    def _consistent(self) -> BankConfig:
        if not self.simulate and not self.url:
            raise ValueError(f"bank {self.name}: give a url, or simulate = true")
        if len(self.sizes) not in (1, len(self.boards)):
            raise ValueError(f"bank {self.name}: give one sizes entry, or one per board")
        for entry in self.sizes:
            if len(entry.split()) != self.doors_per_board:
                raise ValueError(f"bank {self.name}: a sizes entry must list {self.doors_per_board} doors")
        if self.door_sensor_pins is not None:
            if len(self.door_sensor_pins) != len(self.boards) or any(
                    len(pins) != self.doors_per_board for pins in self.door_sensor_pins):
                raise ValueError(f"bank {self.name}: door_sensor_pins needs one pin per door for every board")
        return self

    def gpio_pins(self) -> dict[tuple[int, int], int | str] | None:
        """(board, channel) -> GPIO pin of its door sensor, when the bank reads doors from GPIO."""
        if self.door_sensor_pins is None:
            return None
        return {(board, channel): pin for board, pins in zip(self.boards, self.door_sensor_pins)
                for channel, pin in enumerate(pins)}

    def board_sizes(self, index: int) -> list[str]:
        return (self.sizes[0] if len(self.sizes) == 1 else self.sizes[index]).split()

    def profile(self, url: str | None = None) -> BankProfile:
        return BankProfile(protocol=self.protocol, url=url or self.url or "", boards=self.boards,
                           channels_per_board=self.doors_per_board, baudrate=self.line_speed,
                           polarity=self.polarity, status_byte_order=self.status_byte_order, pulse_ms=self.pulse_ms, reply_timeout=self.reply_timeout,
                           has_item_sensors=self.has_item_sensors)

    def compartments(self) -> list[CompartmentSpec]:
        """Labels run A01, A02... board by board, channel by channel."""
        specs = []
        for index, board in enumerate(self.boards):
            for channel, size in enumerate(self.board_sizes(index)):
                number = index * self.doors_per_board + channel + 1
                specs.append(CompartmentSpec(f"{self.name}{number:02d}", self.name, board, channel, size))
        return specs


class PostingConfig(_Frozen):
    """Posting at the kiosk: the tariff, the collection times and cut-offs, the S10 block.

    ``tariff``: ``origin_province``, ``zones`` (zone -> provinces), ``prices`` (zone ->
    first_weight_g, first_fen, step_g, step_fen), ``max_weight_g``; ``postkiosk config sample``
    prints the default. ``schedule``: ``collections`` (["09:30", ...]), ``same_day_cutoff``,
    ``regional_cutoff``, ``regional_by``. ``serial_first``..``serial_last``: the block of UPU S10
    serials the postal operator gave this station. ``collect_carriers``: the carriers whose couriers
    collect outbound mail here (empty: every courier)."""

    enabled: bool = True
    tariff: dict[str, Any] = Field(default_factory=lambda: _default_tariff())
    schedule: dict[str, Any] = Field(default_factory=dict)
    service_indicator: str = Field("CP", pattern=r"^[A-IL-RU-VX-Z][A-Z]$")  # J, K, S, T, W are reserved
    country: str = Field("CN", pattern=r"^[A-Z]{2}$")
    serial_first: int = Field(10_000_000, ge=0, le=99_999_999)
    serial_last: int = Field(99_999_999, ge=0, le=99_999_999)
    tracking_url: str = "https://track.example.cn/{waybill}"
    service_name: str = "标准快递"
    elderly_age: int = Field(60, ge=50, le=80)
    id_retention_days: float = Field(7.0, gt=0, le=365)
    history_days: float = Field(180.0, gt=0, le=3650)
    idle_timeout: float = Field(180.0, ge=30)
    collect_carriers: tuple[str, ...] = ()
    #: offer "pay at the counter" (the label prints unpaid; the staff take the money)
    pay_at_counter: bool = True

    @model_validator(mode="after")
    def _parts_valid(self) -> PostingConfig:
        from lockers.dispatch import DispatchSchedule
        from lockers.tariff import Tariff

        if self.serial_first > self.serial_last:
            raise ValueError("posting: serial_first is after serial_last")
        Tariff.from_config(self.tariff)
        DispatchSchedule.from_config(self.schedule)
        return self


class PaymentCodeFormat(_Frozen):
    """One wallet's payment codes: one of ``prefixes``, ``min_length``..``max_length`` digits."""

    prefixes: tuple[str, ...] = Field(min_length=1)
    min_length: int = Field(ge=8, le=40)
    max_length: int = Field(ge=8, le=40)

    @model_validator(mode="after")
    def _sane(self) -> PaymentCodeFormat:
        if self.min_length > self.max_length:
            raise ValueError("min_length is more than max_length")
        if not all(p.isdigit() and 0 < len(p) < self.min_length for p in self.prefixes):
            raise ValueError("prefixes are digits, shorter than the code")
        return self


class PaymentsConfig(_Frozen):
    """Payments by scanned payment code (``[payments]``).

    ``acquirers``: one table per channel (``wechat``, ``alipay``, ``ecny``...), each with its
    ``protocol`` (``wechat-v2``, ``alipay``, ``aggregator``), ``url`` and credentials (see
    ``lockers.acquirers.factory``); a channel with no table takes no payments. ``simulate = true``
    runs the loopback gateway simulator for every channel (the demo). ``station_id`` goes into every
    order number (letters and digits, up to 8). Timings follow rules-and-identifiers.md §4.4 and
    should not be changed for a real acquirer. ``check_seconds``: how often the acquirers' endpoints
    are checked (no paid flow starts while none answers)."""

    simulate: bool = False
    station_id: str = Field("PK01", pattern=r"^[A-Za-z0-9]{1,8}$")
    acquirers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    query_interval: float = Field(5.0, gt=0)
    give_up_after: float = Field(30.0, gt=0)
    reverse_not_before: float = Field(15.0, ge=15.0)
    call_timeout: float = Field(15.0, gt=0)
    check_seconds: float = Field(15.0, ge=1)
    reconcile_seconds: float = Field(60.0, ge=5)
    commissions: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: how bills paid at the kiosk reach the phone company or utility: "none" (bill payment is not
    #: offered) or "simulated" (the demo's stand-in; no real biller is integrated yet)
    biller: Literal["none", "simulated"] = "none"
    #: how far below zero the prepaid balance may go for agency payments (the operator's rule: 0)
    credit_limit_fen: int = Field(0, ge=0)
    #: payment code formats, decided per acquirer (rules-and-identifiers.md §3.3): a channel ->
    #: ``{prefixes = [...], min_length = N, max_length = N}`` replaces the built-in rule, ``false``
    #: refuses that wallet's codes. e-CNY's built-in rule (19 digits, prefix 01) is unverified.
    codes: dict[str, PaymentCodeFormat | Literal[False]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _parts_valid(self) -> PaymentsConfig:
        from lockers.acquirers.factory import PROTOCOLS
        from lockers.station_ledger import CommissionTable

        if self.commissions:
            CommissionTable.from_config(self.commissions)
        for channel, table in self.acquirers.items():
            if table.get("protocol") not in PROTOCOLS:
                raise ValueError(f"payments.acquirers.{channel}: protocol must be one of {', '.join(PROTOCOLS)}")
        if self.query_interval > self.give_up_after:
            raise ValueError("payments: query_interval is longer than give_up_after")
        unknown = set(self.codes) - {"wechat", "alipay", "unionpay", "ecny"}
        if unknown:
            raise ValueError(f"payments.codes: unknown wallet(s) {', '.join(sorted(unknown))}")
        return self

    def code_rules(self) -> Any:
        """``hal.codes.PaymentCodeRules`` with the configured formats in place of the built-in ones."""
        import dataclasses

        from hal.codes import DEFAULT_PAYMENT_RULES, ChannelRule

        changes: dict[str, Any] = {}
        for channel, fmt in self.codes.items():
            changes[channel] = None if fmt is False else ChannelRule(
                channel, tuple(fmt.prefixes), fmt.min_length, fmt.max_length, "configured")
        return dataclasses.replace(DEFAULT_PAYMENT_RULES, **changes)

    @property
    def enabled(self) -> bool:
        return self.simulate or bool(self.acquirers)

    def settings(self, timezone: str) -> Any:
        from lockers.payments import PaymentSettings

        return PaymentSettings(station_id=self.station_id, timezone=timezone, query_interval=self.query_interval,
                               give_up_after=self.give_up_after, reverse_not_before=self.reverse_not_before,
                               call_timeout=self.call_timeout, code_rules=self.code_rules())


def _default_tariff() -> dict[str, Any]:
    from lockers.tariff import DEFAULT_TARIFF

    return dict(DEFAULT_TARIFF)


def _demo_banks() -> tuple[BankConfig, ...]:
    return (BankConfig(name="A", simulate=True),)


class Config(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POSTKIOSK_", env_nested_delimiter="__", frozen=True,
                                      extra="forbid")

    station: StationConfig = StationConfig()
    database: DatabaseConfig = DatabaseConfig()
    web: WebConfig = WebConfig()
    sms: SmsConfig = SmsConfig()
    banks: tuple[BankConfig, ...] = Field(default_factory=_demo_banks)
    scanner: ScannerConfig | None = None
    idcard: IdCardConfig | None = None
    receipt_printer: PrinterConfig | None = None
    label_printer: PrinterConfig | None = None
    scale: ScaleConfig | None = None
    camera: CameraConfig | None = None
    posting: PostingConfig = Field(default_factory=PostingConfig)
    payments: PaymentsConfig = Field(default_factory=PaymentsConfig)
    source: str = "built-in demo configuration"

    @field_validator("banks")
    @classmethod
    def _unique_banks(cls, value: tuple[BankConfig, ...]) -> tuple[BankConfig, ...]:
        names = [b.name for b in value]
        if len(set(names)) != len(names):
            raise ValueError("bank names must be unique")
        if not value:
            raise ValueError("at least one lock bank is needed")
        return value

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)

    def layout(self) -> list[CompartmentSpec]:
        return [spec for bank in self.banks for spec in bank.compartments()]

    def custody_settings(self) -> CustodySettings:
        return CustodySettings(station_name=self.station.name, station_address=self.station.address,
                               free_storage_hours=self.station.free_storage_hours,
                               fee_per_day_fen=self.station.fee_per_day_fen, fee_cap_fen=self.station.fee_cap_fen,
                               collect_carriers=self.posting.collect_carriers)

    def posting_settings(self) -> Any:
        """``lockers.posting.PostingSettings`` from the [posting] section."""
        from lockers.dispatch import DispatchSchedule
        from lockers.posting import PostingSettings
        from lockers.tariff import Tariff

        p = self.posting
        return PostingSettings(tariff=Tariff.from_config(p.tariff), schedule=DispatchSchedule.from_config(p.schedule),
                               service_indicator=p.service_indicator, country=p.country,
                               serial_first=p.serial_first, serial_last=p.serial_last, tracking_url=p.tracking_url,
                               service_name=p.service_name, station_name=self.station.name,
                               elderly_age=p.elderly_age, id_retention_days=p.id_retention_days, history_days=p.history_days,
                               idle_timeout=p.idle_timeout, pay_at_counter=p.pay_at_counter)

    @property
    def is_demo(self) -> bool:
        devices = (self.scanner, self.idcard, self.receipt_printer, self.label_printer, self.scale, self.camera)
        return any(bank.simulate for bank in self.banks) or any(d is not None and d.simulate for d in devices)


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the configuration: ``path``, else ``$POSTKIOSK_CONFIG``, else the built-in demo."""
    path = path or os.environ.get("POSTKIOSK_CONFIG")
    data: dict[str, Any] = {}
    if path:
        file = Path(path)
        try:
            with file.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise SystemExit(f"configuration file not found: {file}") from None
        except tomllib.TOMLDecodeError as err:
            raise SystemExit(f"configuration file {file} is not valid TOML: {err}") from None
        data["source"] = str(file)
    else:
        data.update(DEMO_DEVICES)
        data["web"] = {"api_docs": True}
        data["payments"] = {"simulate": True, "station_id": "DEMO", "biller": "simulated"}
        data["station"] = {"fee_per_day_fen": 100, "fee_cap_fen": 500}
    return Config(**data)


def sample_toml() -> str:
    """A commented example configuration, printed by ``postkiosk config sample``."""
    return Path(__file__).with_name("station.example.toml").read_text(encoding="utf-8")
