"""Hostile uploads against the upload API, in a process of their own: each case's status,
message, time, and how far the process's peak memory grew.

  python -m tests.security.hostile_uploads   (prints a table; make test asserts on the JSON)

Runs on a throwaway SQLite database and media folder; nothing reaches the developer's data."""

import io
import json
import os
import resource
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(side: int = 30_000) -> bytes:
    """A valid 1-bit PNG that declares side×side pixels: ~100 KB on disk, 900 MP decoded."""
    row = b"\x00" + b"\x00" * (side // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def xray_png() -> bytes:
    from PIL import Image

    image = Image.linear_gradient("L").resize((256, 256))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def tiff() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (256, 256), 128).save(out, format="TIFF")
    return out.getvalue()


def psd() -> bytes:
    """A Photoshop header (Pillow opens PSD files): signature, version 1, 1 channel, 64×64."""
    return b"8BPS" + struct.pack(">H6xHIIHH", 1, 1, 64, 64, 8, 1) + b"\x00" * 64


def fits() -> bytes:
    """A FITS primary header (Pillow opens FITS files) and one block of 8-bit data."""
    cards = ["SIMPLE  =                    T", "BITPIX  =                    8",
             "NAXIS   =                    2", "NAXIS1  =                   64",
             "NAXIS2  =                   64", "END"]  # fmt: skip
    header = "".join(card.ljust(80) for card in cards).ljust(2880).encode()
    return header + b"\x00" * 2880


def raw_upload(data: bytes, filename: str) -> bytes:
    """A multipart body with the file name exactly as given (a test client would tidy it)."""
    parts = [
        b'--B\r\nContent-Disposition: form-data; name="patient_id"\r\n\r\nH-1\r\n',
        b'--B\r\nContent-Disposition: form-data; name="accession"\r\n\r\nH-1\r\n',
        b'--B\r\nContent-Disposition: form-data; name="image"; filename="'
        + filename.encode("utf-8", "surrogateescape")
        + b'"\r\nContent-Type: image/png\r\n\r\n'
        + data
        + b"\r\n--B--\r\n",
    ]
    return b"".join(parts)


def cases(max_bytes: int) -> list[tuple[str, dict | bytes]]:
    """(case, request kwargs for the upload API, or a raw multipart body)."""
    good = xray_png()
    html = b"<html><body><script>alert(document.cookie)</script></body></html>"

    def upload(data: bytes, name: str, content_type: str = "image/png") -> dict:
        from django.core.files.uploadedfile import SimpleUploadedFile

        return {"image": SimpleUploadedFile(name, data, content_type=content_type)}

    return [
        ("decompression bomb: 30000×30000 PNG", upload(png_bomb(), "bomb.png")),
        ("polyglot: PNG followed by HTML", upload(good + html, "polyglot.png")),
        ("name x.jpg.php", upload(good, "x.jpg.php")),
        ("name with NUL", raw_upload(good, "a\x00b.png")),
        ("name with ../", raw_upload(good, "../../etc/x.png")),
        ("very long name", raw_upload(good, "a" * 300 + ".png")),
        ("lying Content-Type: HTML as image/png", upload(html, "x.png", "image/png")),
        ("TIFF (Pillow opens it)", upload(tiff(), "x.png")),
        ("PSD (Pillow opens it)", upload(psd(), "x.png")),
        ("FITS (Pillow opens it)", upload(fits(), "x.png")),
        ("zero bytes", upload(b"", "empty.png")),
        ("over the size cap", upload(good + b"\x00" * max_bytes, "big.png")),
        (
            "more files than allowed in one request",
            {f"image{i}": upload(good, f"{i}.png")["image"] for i in range(25)},
        ),
    ]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run() -> list[dict]:
    tmp = Path(tempfile.mkdtemp(prefix="xrayweb-hostile-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="xrayweb.settings",
        XRAYWEB_DATA_DIR=str(tmp),
        DATABASE_URL="",
        REDIS_URL="",
        CELERY_BROKER_URL="memory://",
    )
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from xrayweb.accounts.services import user_create_with_role
    from xrayweb.studies.models import Study

    call_command("migrate", verbosity=0)
    client = APIClient()
    client.force_authenticate(user_create_with_role(username="s", password="x", role="staff"))
    warm = client.post("/api/studies/", {**cases(0)[2][1], "patient_id": "W", "accession": "W"})
    assert warm.status_code == 400  # x.jpg.php: imports and first-request costs paid here
    results = []
    for name, files in cases(settings.MAX_UPLOAD_BYTES):
        before_rows, before_peak = Study.objects.count(), _peak_mb()
        start = time.perf_counter()
        if isinstance(files, bytes):
            response = client.generic(
                "POST", "/api/studies/", files, content_type="multipart/form-data; boundary=B"
            )
        else:
            response = client.post(
                "/api/studies/",
                {**files, "patient_id": "H-1", "accession": "H-1"},
                format="multipart",
            )
        seconds = time.perf_counter() - start
        body = response.json() if response["Content-Type"] == "application/json" else {}
        results.append(
            {
                "case": name,
                "status": response.status_code,
                "detail": body.get("detail", ""),
                "seconds": round(seconds, 3),
                "peak_growth_mb": round(_peak_mb() - before_peak, 1),
                "stored": Study.objects.count() - before_rows,
            }
        )
    return results


def main() -> int:
    results = run()
    if "--json" in sys.argv:
        print(json.dumps(results))
        return 0
    print(f"{'case':<42}{'status':>7}{'s':>7}{'peak +MB':>9}  detail")
    for r in results:
        print(
            f"{r['case']:<42}{r['status']:>7}{r['seconds']:>7.3f}{r['peak_growth_mb']:>9.1f}"
            f"  {r['detail'][:70]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
