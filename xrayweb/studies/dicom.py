"""DICOM uploads: header first, then pixels; modality LUT, VOI LUT or window, MONOCHROME1,
bit depth. Every way a file can be wrong ends in an ApplicationError (4xx), never a 500.

Decoding runs in the web process with pydicom and numpy (no torch). Memory is bounded by the
pixel limit, which is checked on the header before any pixel is decoded."""

import io
import struct
import warnings
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from PIL import Image
from pydicom import Dataset, dcmread, uid
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.pixels.utils import _get_jpg_parameters

from xrayweb.errors import ApplicationError

# Deflated Explicit VR Little Endian is left out on purpose: pydicom inflates the whole
# dataset with no size cap, so a small upload could expand to gigabytes (a deflate bomb).
# Uncompressed, RLE (pylibjpeg-rle), JPEG baseline/extended/lossless (pylibjpeg-libjpeg),
# JPEG-LS (pylibjpeg-libjpeg), JPEG 2000 (pylibjpeg-openjpeg).
SUPPORTED_SYNTAXES = {
    uid.ImplicitVRLittleEndian,
    uid.ExplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
    uid.RLELossless,
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
    uid.JPEGLossless,
    uid.JPEGLosslessSV1,
    uid.JPEGLSLossless,
    uid.JPEGLSNearLossless,
    uid.JPEG2000Lossless,
    uid.JPEG2000,
}
# Header field -> Study field. Shown on the pages; PatientID and AccessionNumber fill the
# study's own identifiers when the uploader leaves them empty.
HEADER_FIELDS = {
    "PatientID": "patient_id",
    "PatientSex": "patient_sex",
    "PatientAge": "patient_age",
    "StudyInstanceUID": "study_instance_uid",
    "SeriesInstanceUID": "series_instance_uid",
    "SOPInstanceUID": "sop_instance_uid",
    "AccessionNumber": "accession",
    "StudyDate": "study_date",
    "Modality": "modality",
    "ViewPosition": "view",
    "BodyPartExamined": "body_part",
    "Manufacturer": "manufacturer",
}
FIELD_LIMITS = {"patient_sex": 16, "patient_age": 16, "study_date": 8, "modality": 16, "view": 32}
LATERAL_VIEWS = {"LL", "RL", "LATERAL", "LAT", "LLD", "RLD"}
PROJECTION_MODALITIES = {"CR", "DX", "DR", "RG", "OT", ""}


@dataclass(frozen=True)
class DicomImage:
    png: bytes  # 8 bits, after the modality and VOI LUTs: what the radiologist expects
    display_png: bytes  # 8 bits, the full modality range, for window/level on the page
    width: int
    height: int
    fields: dict[str, str]
    # The file's own window as (level, width) on display_png's 0..255 scale.
    display_window: tuple[float, float]
    scope_warnings: list[str] = field(default_factory=list)


def looks_like_dicom(data: bytes, filename: str) -> bool:
    return data[128:132] == b"DICM" or filename.lower().endswith((".dcm", ".dicom"))


def _bad(name: str, message: str, status: int = 400) -> ApplicationError:
    return ApplicationError(f"{name}: {message}", status=status)


def _text(ds, keyword: str, limit: int) -> str:
    value = ds.get(keyword, "")
    text = "" if value is None else str(value).strip()
    return "".join(c for c in text if c.isprintable())[:limit]


def _header_checks(ds, name: str) -> None:
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None:
        raise _bad(name, "the DICOM file has no transfer syntax (truncated or damaged header).")
    if syntax not in SUPPORTED_SYNTAXES:
        raise _bad(
            name,
            f"transfer syntax {syntax.name} ({syntax}) is not supported; send it uncompressed, "
            "RLE, JPEG, JPEG-LS or JPEG 2000.",
            status=415,
        )
    for keyword in ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation"):
        if keyword not in ds or ds[keyword].value in (None, ""):
            raise _bad(name, f"the DICOM header has no {keyword}; there is no image to read.")
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        rows, columns = int(ds.Rows), int(ds.Columns)
        samples, bits = int(ds.get("SamplesPerPixel", 1) or 1), int(ds.BitsAllocated)
    except (TypeError, ValueError) as exc:
        raise _bad(name, "the DICOM header has malformed image dimensions.") from exc
    if frames != 1:
        raise _bad(name, f"multi-frame DICOM ({frames} frames) is not supported; send one image.")
    if ds.PhotometricInterpretation not in ("MONOCHROME1", "MONOCHROME2") or samples != 1:
        raise _bad(name, f"{ds.PhotometricInterpretation} images are not chest radiographs.")
    if bits not in (8, 16):
        raise _bad(name, f"{bits} bits allocated per pixel is not supported (8 or 16).")
    if rows * columns > settings.MAX_IMAGE_PIXELS:
        raise _bad(
            name,
            f"the image is {columns}×{rows} pixels, above the limit of "
            f"{settings.MAX_IMAGE_PIXELS:,} pixels.",
        )
    if rows < 32 or columns < 32:
        raise _bad(name, f"the image is too small ({columns}×{rows}).")


def _check_native_length(ds, name: str) -> None:
    """pydicom only warns (and crops) when native pixel data is longer than Rows × Columns
    say; refuse any mismatch."""
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return
    expected = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1))
    expected = expected * int(ds.BitsAllocated) // 8
    actual = len(ds.PixelData)
    if actual < expected:
        raise _bad(
            name,
            f"the pixel data are truncated: {actual} bytes where Rows × Columns "
            f"({ds.Rows}×{ds.Columns}) need {expected}.",
        )
    if actual not in (expected, expected + 1):  # odd lengths carry one padding byte
        raise _bad(
            name,
            f"Rows × Columns ({ds.Rows}×{ds.Columns}) do not match the pixel data "
            f"({actual} bytes, expected {expected}).",
        )


def _check_compressed_size(ds, name: str) -> None:
    """Codecs size their output from the codestream, not from Rows × Columns: a tiny file
    could make them allocate gigabytes. Compare the codestream's own size first."""
    syntax = ds.file_meta.TransferSyntaxUID
    if not syntax.is_compressed or syntax == uid.RLELossless:
        return
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    if syntax in (uid.JPEG2000Lossless, uid.JPEG2000):
        size = _j2k_size(frame)
    else:
        params = _get_jpg_parameters(frame)
        size = (params["width"], params["height"]) if "width" in params else None
    if size is None:
        raise _bad(name, "the compressed pixel data have no readable image header.")
    if size != (int(ds.Columns), int(ds.Rows)):
        raise _bad(
            name,
            f"Rows × Columns ({ds.Rows}×{ds.Columns}) do not match the compressed image "
            f"({size[1]}×{size[0]}).",
        )


def _j2k_size(frame: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG 2000 codestream's SIZ marker segment."""
    start = frame.find(b"\xff\x4f\xff\x51")
    if start < 0 or len(frame) < start + 24:
        return None
    x, y, x0, y0 = struct.unpack(">IIII", frame[start + 8 : start + 24])
    return x - x0, y - y0


def _to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    scaled = (values.astype(np.float32, copy=False) - np.float32(low)) / np.float32(
        max(high - low, 1e-9)
    )
    np.clip(scaled, 0.0, 1.0, out=scaled)
    scaled *= 255.0
    return np.rint(scaled).astype(np.uint8)


def _voi_range(ds, modality: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The VOI-transformed values and their output range. Where the file gives no VOI LUT or
    window, a robust window: the 0.5th to 99.5th percentile of the modality values."""
    if "VOILUTSequence" in ds:
        out = apply_voi_lut(modality, ds, index=0)
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return out, 0.0, float(2**bits - 1)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        out = apply_voi_lut(modality, ds, index=0)
        return out, *_window_output_range(ds)
    step = max(1, int(np.sqrt(modality.size / 1_000_000)))  # about a million samples
    low, high = np.percentile(modality[::step, ::step], [0.5, 99.5])
    return modality, float(low), float(high if high > low else low + 1)


def _window_output_range(ds) -> tuple[float, float]:
    """The range pydicom's windowing maps onto: the stored values' range, through the
    modality LUT or rescale (pydicom.pixels.processing.apply_windowing)."""
    if ds.get("ModalityLUTSequence"):
        return 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    bits = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation", 0)) == 0:
        low, high = 0.0, float(2**bits - 1)
    else:
        low, high = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        low, high = sorted((low * slope + intercept, high * slope + intercept))
    return low, high


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode="L").save(out, "PNG", optimize=False)
    return out.getvalue()


def _file_window(ds, low: float, high: float) -> tuple[float, float]:
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return 128.0, 256.0
    center = ds.WindowCenter[0] if ds["WindowCenter"].VM > 1 else ds.WindowCenter
    width = ds.WindowWidth[0] if ds["WindowWidth"].VM > 1 else ds.WindowWidth
    span = max(high - low, 1e-9)
    level = (float(center) - low) / span * 255.0
    return round(level, 1), round(max(2.0, float(width) / span * 255.0), 1)


def scope_warnings(fields: dict[str, str]) -> list[str]:
    """Why the model, trained on frontal chest X-rays, may not apply to this image."""
    warnings_ = []
    modality = fields.get("modality", "").upper()
    if modality not in PROJECTION_MODALITIES:
        warnings_.append(f"modality {modality} is not a projection radiograph")
    if fields.get("view", "").upper() in LATERAL_VIEWS:
        warnings_.append(f"view {fields['view']} is lateral, not frontal")
    body = fields.get("body_part", "").upper()
    if body and body not in ("CHEST", "THORAX", "LUNG"):
        warnings_.append(f"body part {fields['body_part']} is not the chest")
    return warnings_


def _header_read(data: bytes, name: str) -> None:
    """Read and check the header alone, every element decoded; ApplicationError if any of it
    is damaged, malformed or out of scope."""
    try:
        header = dcmread(io.BytesIO(data), stop_before_pixels=True)
    except InvalidDicomError as exc:
        raise _bad(name, "not a DICOM file (no DICM marker).") from exc
    except Exception as exc:  # pydicom raises many types on a damaged header
        raise _bad(name, f"the DICOM header is damaged ({type(exc).__name__}).") from exc
    try:  # pydicom decodes each element on first access: decode all of them now, so that
        for _ in header.iterall():  # no damaged element surfaces later (pages, export)
            pass
    except Exception as exc:
        raise _bad(name, f"the DICOM header is damaged ({str(exc)[:160]}).") from exc
    try:
        _header_checks(header, name)
    except ApplicationError:
        raise
    except Exception as exc:
        raise _bad(name, f"the DICOM header is malformed ({type(exc).__name__}).") from exc


def _pixels_read(data: bytes, name: str) -> tuple[Dataset, np.ndarray]:
    """The whole file and its stored frame; ApplicationError if the pixel data are missing,
    truncated, damaged, not one grey-scale frame, or cannot be decoded."""
    try:
        with warnings.catch_warnings():
            # pydicom warns, rather than fails, on truncated compressed data and bad lengths.
            warnings.simplefilter("error")
            ds = dcmread(io.BytesIO(data))
            if "PixelData" not in ds:
                raise _bad(name, "the DICOM file has no pixel data.")
            _check_native_length(ds, name)
            _check_compressed_size(ds, name)
            stored = ds.pixel_array
    except ApplicationError:
        raise
    except Exception as exc:  # decoders raise many types (and warnings, made errors above)
        raise _bad(name, "the pixel data are truncated, damaged or cannot be decoded.") from exc
    if stored.ndim != 2:
        raise _bad(name, "expected one grey-scale frame.")
    return ds, stored


def dicom_decode(*, data: bytes, filename: str = "") -> DicomImage:
    name = filename or "the file"
    _header_read(data, name)
    ds, stored = _pixels_read(data, name)
    try:
        modality = apply_modality_lut(stored, ds).astype(np.float32, copy=False)
        del stored
        voi, low, high = _voi_range(ds, modality)
        image = _to_uint8(voi, low, high)
        del voi
        m_low, m_high = float(np.min(modality)), float(np.max(modality))
        display = _to_uint8(modality, m_low, m_high)
        window = _file_window(ds, m_low, m_high)
    except Exception as exc:  # malformed LUTs, rescale or window values
        raise _bad(name, f"the LUT, rescale or window values are malformed ({exc}).") from exc
    if ds.PhotometricInterpretation == "MONOCHROME1":  # white is low: invert for display
        image, display = 255 - image, 255 - display
        window = (255.0 - window[0], window[1])
    fields = {
        field_name: _text(ds, keyword, FIELD_LIMITS.get(field_name, 64))
        for keyword, field_name in HEADER_FIELDS.items()
    }
    return DicomImage(
        png=_png(image),
        display_png=_png(display),
        width=int(ds.Columns),
        height=int(ds.Rows),
        fields=fields,
        display_window=window,
        scope_warnings=scope_warnings(fields),
    )
