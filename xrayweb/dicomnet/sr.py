"""DICOM Structured Reports for the hospital's PACS, IHE AI Results style: a TID 1500
Measurement Report in the source film's study, as a new series, pointing at the film.

One report for what the model said (device observer, algorithm, probabilities) and one for
what the radiologist read (person observer). A model that cannot read a film says so and
gives no finding. Pure pydicom/highdicom: no Django, no torch."""

import io
import re
from dataclasses import dataclass, field
from datetime import datetime

import highdicom as hd
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    Comprehensive3DSR,
    DeviceObserverIdentifyingAttributes,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    PersonObserverIdentifyingAttributes,
    QualitativeEvaluation,
    RelationshipTypeValues,
    SourceImageForMeasurementGroup,
    TextContentItem,
    TrackingIdentifier,
)
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid
from pydicom.valuerep import DA, DT, TM

MANUFACTURER = "xrayweb"
PRIVATE_SCHEME = "99XRAYWEB"

# SNOMED CT where a concept exists; anything else is coded in our private scheme.
FINDING_CODES: dict[str, CodedConcept] = {
    "covid19": CodedConcept("840539006", "SCT", "COVID-19"),
    "bacterial_pneumonia": CodedConcept("53084003", "SCT", "Bacterial pneumonia"),
    "viral_pneumonia": CodedConcept("75570004", "SCT", "Viral pneumonia"),
    "normal": CodedConcept("17621005", "SCT", "Normal"),
}

# LOINC 36554-4 "XR Chest Single view": the model reads one frontal film at a time, so the
# single-view code fits better than 36643-5 "XR Chest 2 Views" even when the study has two.
CHEST_XRAY = CodedConcept("36554-4", "LN", "XR Chest Single view")

_ASSESSABILITY = CodedConcept("ASSESSABILITY", PRIVATE_SCHEME, "Algorithm assessability")
_NOT_ASSESSABLE = CodedConcept("NOT-ASSESSABLE", PRIVATE_SCHEME, "Not assessable by algorithm")
_REASON = CodedConcept("NA-REASON", PRIVATE_SCHEME, "Reason not assessable")
_FLAG = CodedConcept("FLAG", PRIVATE_SCHEME, "Caution")
# CID 7036 Image Quality Assessment (RadLex), under DCM "Image Quality".
_READING_QUALITY = {
    "assessable": CodedConcept("RID12", "RADLEX", "Diagnostic quality"),
    "not_diagnostic": CodedConcept("RID14", "RADLEX", "Non-diagnostic quality"),
}
# Type 2 in the SR; highdicom reads them from the evidence as attributes, so they must exist.
_TYPE2_FROM_SOURCE = [
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
]
_TITLES = {"dr", "prof", "mr", "mrs", "ms", "miss"}


@dataclass(frozen=True)
class ModelResult:
    label: str
    probabilities: dict[str, float]
    model_name: str
    model_sha256: str
    assessable: bool
    reasons: list[str]
    flags: list[str]
    # Conformal prediction sets: coverage level ("0.90") -> classes, most probable first.
    prediction_sets: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Reading:
    label: str  # "" when the reading says the film is not diagnostic
    reader_name: str
    assessability: str  # "", "assessable" or "not_diagnostic"
    comment: str


def finding_code(label: str) -> CodedConcept:
    if not label:
        raise ValueError("a finding needs a label")
    return FINDING_CODES.get(label) or CodedConcept(label, PRIVATE_SCHEME, label[:64])


def model_result_sr(*, source: bytes, result: ModelResult, key: str, when: datetime) -> bytes:
    """The model's result on the film in ``source`` as a Part-10 SR file. The SOP Instance
    UID depends only on the film and ``key``, so sending the same result twice is idempotent."""
    film = _film(source)
    if result.assessable:
        findings = {
            "finding_type": finding_code(result.label),
            "measurements": [
                _probability(label=label, value=value)
                for label, value in result.probabilities.items()
            ],
            "qualitative_evaluations": _set_members(result.prediction_sets),
        }
    else:
        # Honesty over completeness: no finding and no probabilities, only the refusal.
        findings = {
            "qualitative_evaluations": [QualitativeEvaluation(_ASSESSABILITY, _NOT_ASSESSABLE)]
        }
    texts = [(_REASON, reason) for reason in result.reasons if not result.assessable]
    texts += [(_FLAG, flag) for flag in result.flags]
    algorithm = AlgorithmIdentification(
        name=MANUFACTURER,
        version=result.model_name,
        parameters=[f"bundle sha256 {result.model_sha256}"],
    )
    device = DeviceObserverIdentifyingAttributes(
        # One device per model version: observations of different bundles stay apart.
        uid=generate_uid(entropy_srcs=[result.model_name, "xrayweb device observer"]),
        name=MANUFACTURER,
        manufacturer_name=MANUFACTURER,
        model_name=result.model_name,
    )
    equipment = hd.ContributingEquipment(
        manufacturer=MANUFACTURER,
        purpose_of_reference=codes.DCM.ProcessingEquipment,
        manufacturer_model_name=result.model_name,
        software_versions=result.model_name,
        contribution_datetime=when,
        contribution_description="Model inference",
    )
    return _document(
        film=film,
        kind="model",
        key=key,
        when=when,
        observation=ObservationContext(
            observer_device_context=ObserverContext(codes.cid270.Device, device)
        ),
        group_args={**findings, "algorithm_id": algorithm},
        texts=texts,
        series=(998, "xrayweb AI result (research use, not diagnostic)"),
        equipment=[equipment],
        is_final=False,
    )


def reading_sr(*, source: bytes, reading: Reading, key: str, when: datetime) -> bytes:
    """The radiologist's reading of the film in ``source`` as a Part-10 SR file."""
    if reading.assessability not in ("", *_READING_QUALITY):
        raise ValueError(f"unknown assessability {reading.assessability!r}")
    film = _film(source)
    group_args = {}
    if reading.label:
        group_args["finding_type"] = finding_code(reading.label)
    if reading.assessability:
        quality = _READING_QUALITY[reading.assessability]
        group_args["qualitative_evaluations"] = [
            QualitativeEvaluation(codes.DCM.ImageQuality, quality)
        ]
    person = PersonObserverIdentifyingAttributes(name=person_name(reading.reader_name))
    return _document(
        film=film,
        kind="reading",
        key=key,
        when=when,
        observation=ObservationContext(
            observer_person_context=ObserverContext(codes.cid270.Person, person)
        ),
        group_args=group_args,
        texts=[(codes.DCM.Comment, reading.comment)] if reading.comment.strip() else [],
        series=(997, "xrayweb radiologist reading"),
        equipment=None,
        # Final, but unverified: we know no verifying organization to name.
        is_final=True,
    )


def person_name(text: str) -> str:
    """A DICOM PN from a display name: "Dr Ada Reader" -> "Reader^Ada^^Dr"."""
    cleaned = re.sub(r"[\\=\x00-\x1f]", " ", text).strip()
    if "^" in cleaned:
        return cleaned[:64]
    words = cleaned.split()
    prefix = words.pop(0) if len(words) > 1 and words[0].rstrip(".").lower() in _TITLES else ""
    if not words:
        return "UNKNOWN"
    given = words[0] if len(words) > 1 else ""
    parts = [words[-1], given, " ".join(words[1:-1]), prefix]
    name = "^".join(parts).rstrip("^")[:63]
    # A single component (a user name) keeps a trailing caret: a family name, on purpose.
    return name if "^" in name else name + "^"


def _film(source: bytes) -> Dataset:
    film = dcmread(io.BytesIO(source), stop_before_pixels=True)
    for keyword in _TYPE2_FROM_SOURCE:
        if keyword not in film:
            setattr(film, keyword, "")
    if film.PatientSex not in ("M", "F", "O"):
        film.PatientSex = ""  # highdicom refuses anything else, and the SR may leave it empty
    # Copied into our Patient module, where it is Type 1; films often leave it out, and an
    # identifier typed into a RIS is what "TEXT" means.
    for other in film.get("OtherPatientIDsSequence", []):
        if not other.get("TypeOfPatientID"):
            other.TypeOfPatientID = "TEXT"
    return film


def _probability(*, label: str, value: float) -> Measurement:
    name = CodedConcept(f"P-{label}", PRIVATE_SCHEME, f"Probability of {label}"[:64])
    return Measurement(name=name, value=float(value), unit=codes.UCUM.NoUnits)


def _set_members(prediction_sets: dict[str, list[str]]) -> list[QualitativeEvaluation]:
    # One CODE item per class and level, so a PACS reads the set as codes, not prose.
    members = []
    for level in sorted(prediction_sets, key=float):
        percent = round(float(level) * 100)
        name = CodedConcept(
            f"PSET-{percent}", PRIVATE_SCHEME, f"Prediction set at {percent}% coverage"
        )
        members += [QualitativeEvaluation(name, finding_code(c)) for c in prediction_sets[level]]
    return members


def _uid(film: Dataset, *parts: str) -> str:
    return generate_uid(entropy_srcs=[str(film.SOPInstanceUID), *parts, "xrayweb sr"])


def _document(
    *,
    film: Dataset,
    kind: str,
    key: str,
    when: datetime,
    observation: ObservationContext,
    group_args: dict,
    texts: list[tuple[CodedConcept, str]],
    series: tuple[int, str],
    equipment: list[hd.ContributingEquipment] | None,
    is_final: bool,
) -> bytes:
    group = MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=_uid(film, kind, key, "tracking"), identifier=f"xrayweb {kind}"
        ),
        source_images=[SourceImageForMeasurementGroup.from_source_image(film)],
        **group_args,
    )
    # TID 1501 allows TEXT qualitative evaluations; highdicom only builds CODE ones.
    for name, value in texts:
        group[0].ContentSequence.append(
            TextContentItem(
                name=name, value=value, relationship_type=RelationshipTypeValues.CONTAINS
            )
        )
    report = MeasurementReport(
        observation_context=observation, procedure_reported=CHEST_XRAY, imaging_measurements=[group]
    )
    number, description = series
    sr = Comprehensive3DSR(
        evidence=[film],
        content=report,
        series_instance_uid=_uid(film, kind, "series"),
        series_number=number,
        sop_instance_uid=_uid(film, kind, key),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MANUFACTURER,
        series_description=description,
        is_complete=True,
        is_final=is_final,
        contributing_equipment=equipment,
        content_date=when.date(),
        content_time=when.time(),
        # UTF-8 whatever the source used: reader names and comments may be in any script.
        specific_character_set="ISO_IR 192",
        coding_schemes=[
            CodingSchemeIdentificationItem(
                designator=PRIVATE_SCHEME,
                name="xrayweb local codes",
                responsible_organization="xrayweb",
            )
        ],
    )
    # Built from `when`, not the clock, so the same input gives the same bytes.
    sr.InstanceCreationDate, sr.InstanceCreationTime = DA(when.date()), TM(when.time())
    for item in sr.ContributingEquipmentSequence:
        if "ContributionDateTime" in item:
            item.ContributionDateTime = DT(when)
    if when.utcoffset() is not None:
        sr.TimezoneOffsetFromUTC = when.strftime("%z")
    out = io.BytesIO()
    sr.save_as(out, enforce_file_format=True)
    return out.getvalue()
