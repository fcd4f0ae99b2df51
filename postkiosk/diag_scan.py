"""``postkiosk diag scan``: the camera's code reader on image files.

``--image FILE`` (repeatable) runs the kiosk camera's decoding pipeline (``hal.code_decoder``) on photos or
screenshots, so a technician can tell whether a waybill or notice the kiosk camera would not read is
a problem of the code (print quality, size, tilt) or of the camera (focus, light). For every code it
prints the text, the format, the AIM symbology identifier and the pass that found it: ``zxing`` (the
plain read), ``pyzbar`` (the second decoder), ``rotated`` (a tilted barcode read upright) or
``enhanced`` (a small or noisy QR code read enlarged). ``--formats`` replaces the station's formats
(default QR and Code 128), e.g. ``--formats QRCode,Code128,EAN13``::

    postkiosk diag scan --image waybill.jpg --image notice.png
    postkiosk diag scan image waybill.jpg notice.png        (the same, files as arguments)

Each code also says what the station takes it for (``kind``, from ``hal.codes.classify``). Pickup codes
and tokens, payment codes and resident ID numbers are shown as their mask, in the table and in
``--json`` alike; waybills, S10 numbers and unknown texts as read (the rule of ``diag scanner``,
:func:`postkiosk.diag_scanner.shown_code`).
Exit code 0 when every file had a code, 1 when one had none or could not be read, 2 on bad options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from postkiosk.diag_common import JsonOpt, emit, fail, pick_option
from postkiosk.diag_scanner import shown_code, symbology_name

app = typer.Typer(help="The camera's code reader: decode image files as the kiosk camera would "
                  "(diag scan --image FILE [--image FILE...]).", no_args_is_help=True)

FilesArg = Annotated[list[Path], typer.Argument(help="image files (PNG, JPEG, BMP...)", show_default=False)]
ImageOpt = Annotated[Optional[list[Path]], typer.Option(
    "--image", help="an image file (PNG, JPEG, BMP...); repeat for several", show_default=False)]
FormatsOpt = Annotated[Optional[str], typer.Option(
    "--formats", help="comma-separated zxing-cpp format names to read (default: QRCode,Code128)")]


@dataclass(frozen=True)
class ScanOptions:
    """What was given before a command (the group's options)."""

    formats: str | None = None
    as_json: bool = False


@app.callback(invoke_without_command=True)
def _group(ctx: typer.Context, images: ImageOpt = None, formats: FormatsOpt = None,
           as_json: JsonOpt = False) -> None:
    """The camera's code reader: decode image files as the kiosk camera would."""
    ctx.obj = ScanOptions(formats, as_json)
    if ctx.invoked_subcommand is not None:
        if images:
            fail("give the files either with --image or after 'image', not both", as_json)
        return
    if not images:
        fail("give an image: postkiosk diag scan --image FILE [--image FILE...]", as_json)
    _scan(images, formats, as_json)


def decode_file(decoder: Any, path: Path) -> dict[str, Any]:
    """What the pipeline reads in one image file, as a JSON-ready record (texts masked)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if image is None:
        return {"file": str(path), "error": "cannot read this file as an image", "codes": []}
    codes = []
    for d in decoder.decode(image):
        codes.append({**shown_code(d.text, d.symbology, d.error), "length": len(d.text), "format": d.format,
                      "symbology": d.symbology, "symbology_name": symbology_name(d.symbology),
                      "found_by": d.found_by, "error": d.error})
    return {"file": str(path), "size": [int(image.shape[1]), int(image.shape[0])], "error": None, "codes": codes}


def _table(records: list[dict[str, Any]]) -> Table:
    table = Table(title="codes read")
    table.add_column("file", overflow="fold")
    table.add_column("text", no_wrap=True)  # a technician copies it: the path folds first
    table.add_column("kind", no_wrap=True)
    for column in ("format", "symbology", "pass"):
        table.add_column(column, overflow="fold")
    for rec in records:
        if rec["error"] or not rec["codes"]:
            table.add_row(escape(rec["file"]), f"[red]{escape(rec['error'] or 'no code found')}[/]", "", "", "", "")
            continue
        for code in rec["codes"]:
            text = escape(code["text"]) + ("  [dim](masked)[/]" if code["masked"] else "")
            if code["error"]:
                text += f"  [bold red]{escape(code['error'])}[/]"
            symbology = " ".join(x for x in (code["symbology"], code["symbology_name"]) if x)
            table.add_row(escape(rec["file"]), text, code["kind"], code["format"], escape(symbology), code["found_by"])
    return table


@app.command("image")
def image(ctx: typer.Context, files: FilesArg, formats: FormatsOpt = None, as_json: JsonOpt = False) -> None:
    """Decode image files with the kiosk camera's pipeline and print what it reads (as --image)."""
    group = ctx.find_object(ScanOptions) or ScanOptions()
    as_json = as_json or group.as_json
    _scan(files, pick_option("--formats", group.formats, formats, None, as_json), as_json)


def _scan(files: list[Path], formats: str | None, as_json: bool) -> None:
    """Decode ``files`` and print the records; exit 1 when one had no code or could not be read."""
    from hal.code_decoder import DEFAULT_FORMATS, CodeDecoder

    names = [n.strip() for n in formats.split(",") if n.strip()] if formats else list(DEFAULT_FORMATS)
    try:
        decoder = CodeDecoder(names)
    except ValueError as err:
        fail(str(err), as_json)
    records = [decode_file(decoder, path) for path in files]
    emit(records, as_json, _table)
    if any(rec["error"] or not rec["codes"] for rec in records):
        raise typer.Exit(1)
