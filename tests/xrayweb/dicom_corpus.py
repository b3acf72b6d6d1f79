"""A DICOM corpus generated from a real sample X-ray with pydicom: MONOCHROME1/2, 8/12/16
bits, with and without rescale, each supported compression, and the broken files a hospital
network produces. Each valid case also gives the 8-bit image a viewer should show."""

import io
from dataclasses import dataclass

import imagecodecs
import numpy as np
from PIL import Image
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

IDENTITY = {
    "PatientName": "Doe^Jane",
    "PatientID": "MRN-12345",
    "PatientBirthDate": "19700101",
    "PatientSex": "F",
    "PatientAge": "054Y",
    "AccessionNumber": "ACC-DCM-1",
    "StudyDate": "20250102",
    "StudyTime": "101500",
    "InstitutionName": "St Example Hospital",
    "ReferringPhysicianName": "House^Gregory",
    "OperatorsName": "Tech^Tom",
    "StudyDescription": "CHEST PA for Jane Doe",
    "Manufacturer": "AcmeRad",
    "BodyPartExamined": "CHEST",
    "ViewPosition": "PA",
    "Modality": "DX",
    "OtherPatientIDs": "MRN-OTHER-9",
}
# Identifying values hidden where de-identifiers often miss them.
NESTED_PATIENT_ID = "MRN-NESTED-7"
SOURCE_AE = "PACS_SECRET_AE"


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expected: np.ndarray | None = None  # the 8-bit image to show, for valid files
    lossy: bool = False


def source_image(path, width: int = 320) -> np.ndarray:
    image = Image.open(path).convert("L")
    height = round(image.height * width / image.width)
    return np.asarray(image.resize((width, height), Image.BILINEAR))


def dataset(grey: np.ndarray, *, bits: int = 12, monochrome1: bool = False, **header) -> Dataset:
    """A DX image whose stored values are ``grey`` scaled to ``bits`` (inverted for
    MONOCHROME1), uncompressed, with the identity fields above."""
    top = 2**bits - 1
    stored = np.round(grey.astype(np.float64) * top / 255.0)
    if monochrome1:
        stored = top - stored
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = (
        uid.DigitalXRayImageStorageForPresentation
    )
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    for keyword, value in {**IDENTITY, **header}.items():
        setattr(ds, keyword, value)
    ds.add_new(0x00090010, "LO", "ACME private")
    ds.add_new(0x00091001, "LO", "Doe^Jane private copy")
    ds.FrameOfReferenceUID = generate_uid()
    other = Dataset()
    other.PatientID = NESTED_PATIENT_ID
    other.IssuerOfPatientID = "Nested Hospital"
    ds.OtherPatientIDsSequence = [other]
    ds.file_meta.SourceApplicationEntityTitle = SOURCE_AE
    dtype = np.uint8 if bits <= 8 else np.uint16
    photometric = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.set_pixel_data(stored.astype(dtype), photometric, bits, generate_instance_uid=False)
    return ds


def to_bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _window_all(ds: Dataset, bits: int, slope: float = 1.0, intercept: float = 0.0) -> None:
    """A window over the whole stored range: the shown image is then the source image."""
    low, high = intercept, (2**bits - 1) * slope + intercept
    ds.WindowCenter = f"{(low + high) / 2 + slope / 2:.4f}"
    ds.WindowWidth = f"{high - low + slope:.4f}"


def _percentile_expected(grey: np.ndarray) -> np.ndarray:
    low, high = np.percentile(grey.astype(np.float64), [0.5, 99.5])
    return (np.clip((grey - low) / (high - low), 0, 1) * 255).round().astype(np.uint8)


def _encapsulated(ds: Dataset, frame: bytes, syntax) -> None:
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax


def valid_cases(grey: np.ndarray) -> list[Case]:
    cases = []
    for bits, mono1, rescale in [
        (8, False, False),
        (8, True, False),
        (12, False, True),
        (12, True, False),
        (16, False, False),
        (16, True, True),
    ]:
        ds = dataset(grey, bits=bits, monochrome1=mono1)
        slope, intercept = (2.0, -1024.0) if rescale else (1.0, 0.0)
        if rescale:
            ds.RescaleSlope, ds.RescaleIntercept = "2", "-1024"
        _window_all(ds, bits, slope, intercept)
        name = f"mono{'1' if mono1 else '2'}-{bits}bit-{'rescale' if rescale else 'plain'}"
        cases.append(Case(name, to_bytes(ds), grey))
    voi = dataset(grey, bits=12)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = [round(v * 65535 / 4095) for v in range(4096)]  # identity, 16-bit out
    item["LUTData"].VR = "US"
    voi.VOILUTSequence = [item]
    cases.append(Case("mono2-12bit-voi-lut-sequence", to_bytes(voi), grey))
    no_window = dataset(grey, bits=12)
    cases.append(Case("mono2-12bit-no-window", to_bytes(no_window), _percentile_expected(grey)))
    for syntax, options, lossy in [
        (uid.RLELossless, {}, False),
        (uid.JPEGLSLossless, {}, False),
        (uid.JPEGLSNearLossless, {"jls_error": 2}, True),
        (uid.JPEG2000Lossless, {}, False),
        (uid.JPEG2000, {"j2k_cr": [10]}, True),
    ]:
        ds = dataset(grey, bits=12)
        _window_all(ds, 12)
        ds.compress(syntax, **options)
        cases.append(Case(f"12bit-{syntax.name}", to_bytes(ds), grey, lossy))
    # JPEG lossless SV1 (imagecodecs' libjpeg-turbo) and JPEG baseline (Pillow).
    ds = dataset(grey, bits=12)
    _window_all(ds, 12)
    frame = imagecodecs.jpeg8_encode(ds.pixel_array, lossless=True, predictor=1, bitspersample=12)
    _encapsulated(ds, frame, uid.JPEGLosslessSV1)
    cases.append(Case("12bit-JPEGLosslessSV1", to_bytes(ds), grey))
    ds = dataset(grey, bits=8)
    _window_all(ds, 8)
    jpeg = io.BytesIO()
    Image.fromarray(grey, mode="L").save(jpeg, "JPEG", quality=95)
    _encapsulated(ds, jpeg.getvalue(), uid.JPEGBaseline8Bit)
    ds.LossyImageCompression = "01"
    cases.append(Case("8bit-JPEGBaseline", to_bytes(ds), grey, lossy=True))
    return cases


def broken_cases(grey: np.ndarray) -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, a phrase the error message must contain)."""
    good = to_bytes(dataset(grey, bits=12))
    j2k = dataset(grey, bits=12)
    j2k.compress(uid.JPEG2000Lossless)
    j2k_bytes = to_bytes(j2k)
    no_pixels = dataset(grey, bits=12)
    del no_pixels.PixelData
    wrong_size = dataset(grey, bits=12)
    wrong_size.Rows = int(wrong_size.Rows) - 10
    mpeg = dataset(grey, bits=8)
    _encapsulated(mpeg, b"\x00\x00\x01\xb3" + b"\x00" * 64, uid.MPEG2MPML)
    huge = dataset(grey[:40, :40], bits=8)
    huge.Rows, huge.Columns = 60_000, 60_000
    frames = dataset(grey, bits=8)
    frames.NumberOfFrames = 2
    png = io.BytesIO()
    Image.fromarray(grey).save(png, "PNG")
    bad_frames = dataset(grey, bits=8)
    bad_frames.add_new(0x00280008, "IS", "1")
    bad_frames["NumberOfFrames"]._value = "abc"
    bad_window = dataset(grey, bits=12)
    bad_window.WindowCenter, bad_window.WindowWidth = "100", "0"
    deflated = dataset(grey, bits=8)
    deflated.file_meta.TransferSyntaxUID = uid.DeflatedExplicitVRLittleEndian
    # A JPEG-LS codestream of the full image under a header that claims a quarter of it.
    jls_lie = dataset(grey, bits=12)
    jls_lie.compress(uid.JPEGLSLossless)
    jls_lie.Rows, jls_lie.Columns = int(jls_lie.Rows) // 2, int(jls_lie.Columns) // 2
    # A header element whose VR is no VR (found by the fuzzer in SOPInstanceUID): pydicom
    # reads it lazily and raises NotImplementedError on first access.
    good_uid = to_bytes(dataset(grey, bits=8))
    uid_tag = b"\x08\x00\x18\x00UI"
    bad_vr = good_uid.replace(uid_tag, b"\x08\x00\x18\x00U\x00", 1)
    assert bad_vr != good_uid
    return {
        "bad-vr-header.dcm": (bad_vr, "in tag (0008,0018)"),
        "not-dicom.dcm": (b"just some text, not a DICOM file" * 10, "not a DICOM file"),
        "png-named.dcm": (png.getvalue(), "not a DICOM file"),
        "no-pixels.dcm": (to_bytes(no_pixels), "no pixel data"),
        "rows-mismatch.dcm": (to_bytes(wrong_size), "do not match"),
        "truncated.dcm": (good[: len(good) // 2], "truncated"),
        "truncated-j2k.dcm": (j2k_bytes[: len(j2k_bytes) * 2 // 3], "truncated"),
        "header-only.dcm": (good[:200], "no transfer syntax"),
        "bad-frames.dcm": (to_bytes(bad_frames), "malformed"),
        "bad-window.dcm": (to_bytes(bad_window), "malformed"),
        "deflated.dcm": (to_bytes(deflated), "not supported"),
        "jpegls-bigger-than-header.dcm": (to_bytes(jls_lie), "compressed image"),
        "mpeg2.dcm": (to_bytes(mpeg), "not supported"),
        "huge.dcm": (to_bytes(huge), "above the limit"),
        "multiframe.dcm": (to_bytes(frames), "multi-frame"),
    }
