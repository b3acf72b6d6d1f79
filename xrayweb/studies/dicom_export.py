"""DICOM out: a de-identified copy of an uploaded original (PS3.15 Annex E Basic
Application Level Confidentiality Profile, through dicom-anonymizer's action table), and a
Secondary Capture of the heatmap overlay that references the source image, for a PACS."""

import hashlib
import hmac
import io
from datetime import datetime

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


class OnceRemapper:
    """``remap_uid`` for one export, applied at most once to each value: the profile rewrites
    the UIDs of some sequences itself, and the walk below reaches the same items again (a UID
    remapped twice no longer matches the same UID remapped once elsewhere)."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.made: set[str] = set()

    def __call__(self, old: str) -> str:
        if str(old) in self.made:
            return str(old)
        new = remap_uid(old, secret=self.secret)
        self.made.add(new)
        return new


def _remap(element, remap: OnceRemapper) -> None:
    if not element.value:
        return
    if element.VM > 1:
        element.value = [remap(v) for v in element.value]
    else:
        element.value = remap(element.value)


class ExportRefused(ValueError):
    """The file cannot be de-identified by the Basic Profile alone."""


def _anonymize(ds: Dataset, remap: OnceRemapper) -> None:
    """The Basic Profile action table on ``ds`` and, recursively, on every item of every
    sequence it keeps (the library applies single-tag rules at the top level only)."""

    def replace_uid(dataset, tag):
        element = dataset.get(tag)
        if element is not None and element.VR == "UI":
            _remap(element, remap)

    rules = {tuple(tag): actions.keep for tag in REFERENCE_SEQUENCES}
    rules.update({(t.group, t.element): replace_uid for t in U_TAGS})
    anonymize_dataset(
        ds,
        extra_anonymization_rules=rules,
        base_rules_gen=lambda: initialize_actions(PROFILE_TABLE),
        delete_private_tags=True,
    )
    for element in list(ds):
        if element.VR == "SQ":
            for item in element.value:
                _anonymize(item, remap)


def burned_in_value(ds: Dataset) -> str:
    """The header's BurnedInAnnotation: "YES", "NO", or "" when absent (common for CR)."""
    return str(ds.get("BurnedInAnnotation", "") or "").strip().upper()


def deidentify(data: bytes, *, secret: bytes, checked_clean: bool = False) -> bytes:
    """The original file, de-identified, as bytes of a DICOM file. The Basic Profile does not
    clean pixel data, so the header must say BurnedInAnnotation "NO", or a radiologist must
    have looked and confirmed no text is burned in (``checked_clean``); "YES" is always
    refused."""
    ds = dcmread(io.BytesIO(data))
    burned_in = burned_in_value(ds)
    if burned_in == "YES":
        raise ExportRefused(
            "the image has burned-in annotation (text in the pixels may identify the patient); "
            "the Basic Profile does not clean pixel data"
        )
    if burned_in != "NO" and not checked_clean:
        raise ExportRefused(
            f"BurnedInAnnotation is {burned_in or 'absent'}, so text in the pixels may "
            "identify the patient; a radiologist must look at the image and confirm that none "
            "is burned in (POST burned-in-check) before it can be exported"
        )
    # The library replaces the UIDs of sequences it rewrites through this module global; make
    # it the keyed, deterministic mapping instead of random UIDs kept in process memory.
    remap = OnceRemapper(secret)
    actions.get_UID = remap
    _anonymize(ds, remap)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD[:64]
    code = Dataset()
    code.CodeValue = "113100"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    # A fresh file meta: no source, sending or receiving AE titles, no private information.
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ds.file_meta.TransferSyntaxUID
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128  # the sender's preamble may carry anything (PS3.10 7.1)
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


def secondary_capture(
    original: bytes, overlay_rgb: np.ndarray, *, description: str, key: str
) -> bytes:
    """A Secondary Capture image of ``overlay_rgb`` (H×W×3 uint8) in the source's study, as a
    new series, referencing the source image: the result can go back to the PACS. It carries
    the patient's identity (it is meant for the hospital's own PACS). ``key`` (e.g. the
    prediction) makes its UIDs stable, so downloading it twice gives the same instance."""
    src = dcmread(io.BytesIO(original), stop_before_pixels=True)
    for keyword in ("StudyInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        if not src.get(keyword):
            raise ExportRefused(f"the source has no {keyword} to refer to")
    now = datetime.now()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    series_uid = generate_uid(entropy_srcs=[src.SOPInstanceUID, "xrayweb overlay series"])
    instance_uid = generate_uid(entropy_srcs=[src.SOPInstanceUID, key, "xrayweb overlay"])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = instance_uid
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in SOURCE_COPY:
        setattr(ds, keyword, src.get(keyword, ""))
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "OT"
    ds.SeriesNumber = 999
    ds.SeriesDescription = description[:64]
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = description[:1024]
    ds.BurnedInAnnotation = str(src.get("BurnedInAnnotation", "NO") or "NO")
    if str(src.get("LossyImageCompression", "")) == "01":
        ds.LossyImageCompression = "01"
    ds.PatientOrientation = src.get("PatientOrientation", "")
    # The chest is unpaired: with the body part named, the series needs no Laterality (an
    # empty one is an error to dciodvfy when the body part is unknown).
    ds.BodyPartExamined = str(src.get("BodyPartExamined", "") or "CHEST")[:16]
    references = []
    for _ in range(2):
        item = Dataset()
        item.ReferencedSOPClassUID = src.SOPClassUID
        item.ReferencedSOPInstanceUID = src.SOPInstanceUID
        references.append(item)
    ds.ReferencedImageSequence = Sequence([references[0]])
    ds.SourceImageSequence = Sequence([references[1]])
    ds.set_pixel_data(np.ascontiguousarray(overlay_rgb), "RGB", 8, generate_instance_uid=False)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
