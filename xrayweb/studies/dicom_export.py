"""DICOM out: a de-identified copy of an uploaded original (PS3.15 Annex E Basic
Application Level Confidentiality Profile, through dicom-anonymizer's action table), and a
Secondary Capture of the heatmap overlay that references the source image, for a PACS."""

import hashlib
import hmac
import io
from datetime import UTC, datetime

import numpy as np
from dicomanonymizer import anonymize_dataset, initialize_actions
from dicomanonymizer import simpledicomanonymizer as actions
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

PROFILE_TABLE = "dicomfields_2026c"  # the Annex E table of DICOM 2026c
U_TAGS = {Tag(t) for t in dicom_anonymization_database_selector(PROFILE_TABLE)["U_TAGS"]}
# Kept as sequences whose UIDs are remapped below (the library would empty them).
REFERENCE_SEQUENCES = [(0x0008, 0x1140), (0x0008, 0x2112)]
METHOD = "PS3.15 E.1 Basic Profile; dicom-anonymizer " + PROFILE_TABLE[-5:]


def remap_uid(old: str, *, secret: bytes) -> str:
    """The same source UID always maps to the same new UID (for this secret), across
    requests and processes, so exported instances of one study stay one study."""
    digest = hmac.new(secret, str(old).encode(), hashlib.sha256).digest()[:16]
    return "2.25." + str(int.from_bytes(digest, "big"))


def _remap(element, secret: bytes) -> None:
    if not element.value:
        return
    if element.VM > 1:
        element.value = [remap_uid(v, secret=secret) for v in element.value]
    else:
        element.value = remap_uid(element.value, secret=secret)


def _clean_nested(ds: Dataset, secret: bytes) -> None:
    """The library applies single-tag rules at the top level only: inside sequences, remap
    UIDs and blank names, dates and times too."""

    def visit(dataset, element):
        if dataset is ds:
            return
        if element.tag in U_TAGS and element.VR == "UI":
            _remap(element, secret)
        elif element.VR in ("PN", "DA", "DT", "TM"):
            element.value = ""

    for element in list(ds):
        if element.VR == "SQ":
            for item in element.value:
                item.walk(visit)


def deidentify(data: bytes, *, secret: bytes) -> bytes:
    """The original file, de-identified, as bytes of a DICOM file."""
    ds = dcmread(io.BytesIO(data))

    def replace_uid(dataset, tag):
        element = dataset.get(tag)
        if element is not None and element.VR == "UI":
            _remap(element, secret)

    rules = {tuple(tag): actions.keep for tag in REFERENCE_SEQUENCES}
    rules.update({(t.group, t.element): replace_uid for t in U_TAGS})
    anonymize_dataset(
        ds,
        extra_anonymization_rules=rules,
        base_rules_gen=lambda: initialize_actions(PROFILE_TABLE),
        delete_private_tags=True,
    )
    _clean_nested(ds, secret)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD[:64]
    code = Dataset()
    code.CodeValue = "113100"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


SOURCE_COPY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


def secondary_capture(original: bytes, overlay_rgb: np.ndarray, *, description: str) -> bytes:
    """A Secondary Capture image of ``overlay_rgb`` (H×W×3 uint8) in the source's study, as a
    new series, referencing the source image: the result can go back to the PACS."""
    src = dcmread(io.BytesIO(original), stop_before_pixels=True)
    now = datetime.now(UTC)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in SOURCE_COPY:
        setattr(ds, keyword, src.get(keyword, ""))
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.SeriesNumber = 999
    ds.SeriesDescription = description[:64]
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = description[:1024]
    ds.BurnedInAnnotation = "NO"
    ds.PatientOrientation = src.get("PatientOrientation", "")
    references = []
    for _ in range(2):
        item = Dataset()
        item.ReferencedSOPClassUID = src.SOPClassUID
        item.ReferencedSOPInstanceUID = src.SOPInstanceUID
        references.append(item)
    ds.ReferencedImageSequence = Sequence([references[0]])
    ds.SourceImageSequence = Sequence([references[1]])
    ds.set_pixel_data(np.ascontiguousarray(overlay_rgb), "RGB", 8)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
