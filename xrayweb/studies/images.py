"""Validate uploaded images before anything is stored: type, size, pixel count, integrity."""

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from xrayweb.errors import ApplicationError

ACCEPTED_FORMATS = ("PNG", "JPEG")


@dataclass(frozen=True)
class ValidatedImage:
    data: bytes
    format: str
    width: int
    height: int
    sha256: str


# What an uploaded file may be called: an image or DICOM extension, or none (DICOM files from
# a PACS often have none). The name is only shown back; files are stored under generated names.
ACCEPTED_EXTENSIONS = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
MAX_FILENAME = 255


def filename_unsafe(name: str) -> str:
    """Why a file name is not a plain file name ("" if it is): too long, a path, or control
    characters. Shared by the service and the multipart parser (xrayweb.studies.middleware)."""
    if len(name) > MAX_FILENAME:
        return f"the file name is longer than {MAX_FILENAME} characters"
    if any(not c.isprintable() for c in name) or "/" in name or "\\" in name:
        shown = name.encode("unicode_escape").decode()[:80]
        return f"the file name {shown!r} holds a path or control characters"
    return ""


def filename_check(name: str) -> None:
    """Refuse names that are not a plain file name with an accepted extension (x.jpg.php,
    control characters, paths, very long names)."""
    if problem := filename_unsafe(name):
        raise ApplicationError(f"{problem[0].upper()}{problem[1:]}.")
    suffix = Path(name).suffix.lower()
    if suffix and suffix not in ACCEPTED_EXTENSIONS:
        raise ApplicationError(
            f"{name}: only {', '.join(ACCEPTED_EXTENSIONS)} files (or DICOM files without an "
            "extension) are accepted."
        )


def _trailing_data(data: bytes, image_format: str) -> bool:
    """Bytes after the image's end (a PNG followed by HTML is a polyglot): PNG must end with
    its IEND chunk, JPEG with its EOI marker (trailing zero padding is allowed)."""
    if image_format == "PNG":
        return not data.endswith(b"IEND\xaeB`\x82")
    return not data.rstrip(b"\x00").endswith(b"\xff\xd9")


def upload_size_check(*, name: str, data: bytes | None = None, size: int | None = None) -> None:
    """Empty files and files over MAX_UPLOAD_BYTES are refused before anything decodes them
    (given ``size``, before the upload is even read into memory)."""
    size = len(data) if data is not None else size or 0
    if size == 0:
        raise ApplicationError(f"{name}: the file is empty.")
    if size > settings.MAX_UPLOAD_BYTES:
        limit_mb = settings.MAX_UPLOAD_BYTES / (1024 * 1024)
        raise ApplicationError(f"{name}: the file is larger than {limit_mb:.0f} MB.", status=413)


def image_validate(*, data: bytes, filename: str = "") -> ValidatedImage:
    """Return the image's facts, or raise ApplicationError (4xx) with a message for the user."""
    name = filename or "the file"
    upload_size_check(data=data, name=name)
    limit = settings.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            width, height = image.size
            if width * height > limit:
                raise ApplicationError(
                    f"{name}: the image is {width}×{height} pixels, above the limit of "
                    f"{limit:,} pixels."
                )
            if width < 32 or height < 32:
                raise ApplicationError(f"{name}: the image is too small ({width}×{height}).")
            image.load()
            if _trailing_data(data, image.format):
                raise ApplicationError(
                    f"{name}: there is data after the end of the image; nothing was stored."
                )
    except UnidentifiedImageError as exc:
        raise ApplicationError(f"{name}: not a PNG or JPEG image.") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ApplicationError(f"{name}: the image declares too many pixels.") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ApplicationError(f"{name}: the image is truncated or corrupt.") from exc
    return ValidatedImage(
        data=data,
        format=image.format,
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
    )


THUMBNAIL_SIDE = 64


def thumbnail_png(data: bytes, side: int = THUMBNAIL_SIDE) -> bytes:
    """A greyscale PNG of a validated image, its longest side ``side`` pixels."""
    with Image.open(io.BytesIO(data)) as image:
        small = image.convert("L")
        small.thumbnail((side, side), Image.BILINEAR)
        out = io.BytesIO()
        small.save(out, format="PNG", optimize=True)
    return out.getvalue()
