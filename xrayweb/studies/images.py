"""Validate uploaded images before anything is stored: type, size, pixel count, integrity."""

import hashlib
import io
import warnings
from dataclasses import dataclass

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


def upload_size_check(*, data: bytes, name: str) -> None:
    """Empty files and files over MAX_UPLOAD_BYTES are refused before anything decodes them."""
    if not data:
        raise ApplicationError(f"{name}: the file is empty.")
    if len(data) > settings.MAX_UPLOAD_BYTES:
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
