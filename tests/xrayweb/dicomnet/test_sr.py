"""The Structured Reports sent to PACS: read back with plain pydicom (not highdicom, which
wrote them) and checked by dicom3tools' dciodvfy."""

import ast
import io
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import Comprehensive3DSRStorage

from tests.xrayweb.dicom_corpus import dataset, to_bytes
from xrayweb.dicomnet import sr as sr_module
from xrayweb.dicomnet.sr import (
    ModelResult,
    Reading,
    model_result_sr,
    person_name,
    reading_sr,
)

MODEL = "20261204-101500-ab12cd34"
SHA = "ab12cd34" * 8
PROBABILITIES = {
    "covid19": 0.7,
    "bacterial_pneumonia": 0.1,
    "viral_pneumonia": 0.15,
    "normal": 0.05,
}
WHEN = datetime(2026, 12, 4, 10, 15, 30, tzinfo=UTC)
SETS = {"0.95": ["covid19", "viral_pneumonia", "normal"], "0.90": ["covid19", "viral_pneumonia"]}
SNOMED = {
    "covid19": "840539006",
    "bacterial_pneumonia": "53084003",
    "viral_pneumonia": "75570004",
    "normal": "17621005",
}


def dciodvfy_report(path) -> tuple[list[str], list[str]]:
    """dciodvfy's (errors, warnings) for the file at ``path``. Fails, never skips, when
    dicom3tools is missing: a silent skip would let invalid DICOM reach a PACS."""
    binary = shutil.which("dciodvfy")
    if binary is None:
        pytest.fail("dciodvfy not found: install dicom3tools (`make test` does)")
    run = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=120)
    lines = [line.strip() for line in (run.stdout + run.stderr).splitlines()]
    errors = [line for line in lines if line.startswith("Error") or " - Error - " in line]
    warnings = [line for line in lines if line.startswith("Warning") or " - Warning - " in line]
    return errors, warnings


def film(**header) -> bytes:
    return to_bytes(dataset(np.zeros((64, 64), np.uint8) + 100, bits=12, **header))


def result(**changes) -> ModelResult:
    fields = {
        "label": "covid19",
        "probabilities": PROBABILITIES,
        "model_name": MODEL,
        "model_sha256": SHA,
        "assessable": True,
        "reasons": [],
        "flags": ["read with care: low confidence"],
    }
    return ModelResult(**{**fields, **changes})


def reading(**changes) -> Reading:
    fields = {
        "label": "viral_pneumonia",
        "reader_name": "Dr Ada Reader",
        "assessability": "assessable",
        "comment": "patchy bilateral opacities",
    }
    return Reading(**{**fields, **changes})


def read(data: bytes) -> Dataset:
    return dcmread(io.BytesIO(data))


def items(node: Dataset) -> Iterator[Dataset]:
    for item in node.get("ContentSequence", []):
        yield item
        yield from items(item)


def named(ds: Dataset, meaning: str) -> list[Dataset]:
    return [i for i in items(ds) if i.ConceptNameCodeSequence[0].CodeMeaning == meaning]


def code_of(item: Dataset) -> str:
    concept = item.ConceptCodeSequence[0]
    return concept.get("CodeValue") or concept.LongCodeValue


@pytest.fixture
def source() -> bytes:
    return film()


def test_model_sr_is_a_measurement_report_in_the_source_study(source):
    original, sr = (
        read(source),
        read(model_result_sr(source=source, result=result(), key="p1", when=WHEN)),
    )

    assert sr.SOPClassUID == Comprehensive3DSRStorage == sr.file_meta.MediaStorageSOPClassUID
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert sr.StudyInstanceUID == original.StudyInstanceUID
    assert sr.SeriesInstanceUID != original.SeriesInstanceUID
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "AccessionNumber"):
        assert sr[keyword].value == original[keyword].value
    assert (sr.Modality, sr.Manufacturer, sr.SeriesNumber, sr.InstanceNumber) == (
        "SR",
        "xrayweb",
        998,
        1,
    )
    assert "not diagnostic" in sr.SeriesDescription
    assert (sr.ContentDate, sr.ContentTime) == ("20261204", "101530")
    (image,) = [i for i in items(sr) if i.ValueType == "IMAGE"]
    assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == original.SOPInstanceUID
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == original.SOPInstanceUID
    (procedure,) = named(sr, "Procedure reported")
    assert code_of(procedure) == "36554-4"


def test_model_sr_gives_the_snomed_finding_and_one_probability_per_class(source):
    sr = read(model_result_sr(source=source, result=result(), key="p1", when=WHEN))

    (finding,) = named(sr, "Finding")
    assert (code_of(finding), finding.ConceptCodeSequence[0].CodingSchemeDesignator) == (
        SNOMED["covid19"],
        "SCT",
    )
    numbers = [i for i in items(sr) if i.ValueType == "NUM"]
    found = {
        i.ConceptNameCodeSequence[0].CodeMeaning: float(i.MeasuredValueSequence[0].NumericValue)
        for i in numbers
    }
    assert found == {f"Probability of {label}": p for label, p in PROBABILITIES.items()}
    units = {i.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue for i in numbers}
    assert units == {"1"}
    assert [i.TextValue for i in named(sr, "Caution")] == ["read with care: low confidence"]


@pytest.mark.parametrize("label", list(SNOMED))
def test_each_class_has_its_snomed_code(source, label):
    sr = read(model_result_sr(source=source, result=result(label=label), key="p1", when=WHEN))

    assert [code_of(i) for i in named(sr, "Finding")] == [SNOMED[label]]


def test_unknown_label_falls_back_to_the_private_scheme(source):
    sr = read(
        model_result_sr(source=source, result=result(label="tuberculosis"), key="p1", when=WHEN)
    )

    (finding,) = named(sr, "Finding")
    concept = finding.ConceptCodeSequence[0]
    assert (concept.CodeValue, concept.CodingSchemeDesignator) == ("tuberculosis", "99XRAYWEB")
    schemes = [s.CodingSchemeDesignator for s in sr.CodingSchemeIdentificationSequence]
    assert "99XRAYWEB" in schemes


def test_model_sr_names_the_algorithm_the_device_and_the_contributing_equipment(source):
    sr = read(model_result_sr(source=source, result=result(), key="p1", when=WHEN))

    assert [i.TextValue for i in named(sr, "Algorithm Version")] == [MODEL]
    assert [i.TextValue for i in named(sr, "Algorithm Name")] == ["xrayweb"]
    assert SHA in named(sr, "Algorithm Parameters")[0].TextValue
    assert code_of(named(sr, "Observer Type")[0]) == "121007"  # Device
    assert [i.TextValue for i in named(sr, "Device Observer Model Name")] == [MODEL]
    assert named(sr, "Person Observer Name") == []
    ours = [e for e in sr.ContributingEquipmentSequence if e.Manufacturer == "xrayweb"]
    assert [(e.ManufacturerModelName, e.SoftwareVersions) for e in ours] == [(MODEL, MODEL)]
    assert ours[0].PurposeOfReferenceCodeSequence[0].CodeValue == "109102"  # Processing


def test_model_sr_names_each_prediction_set_as_coded_classes_most_probable_first(source):
    sr = read(
        model_result_sr(source=source, result=result(prediction_sets=SETS), key="p1", when=WHEN)
    )

    at_90 = named(sr, "Prediction set at 90% coverage")
    at_95 = named(sr, "Prediction set at 95% coverage")
    assert [code_of(i) for i in at_90] == [SNOMED["covid19"], SNOMED["viral_pneumonia"]]
    assert [code_of(i) for i in at_95] == [SNOMED[c] for c in SETS["0.95"]]
    assert {i.ValueType for i in at_90 + at_95} == {"CODE"}
    assert {i.RelationshipType for i in at_90 + at_95} == {"CONTAINS"}
    assert [i.ConceptNameCodeSequence[0].CodeValue for i in at_90[:1] + at_95[:1]] == [
        "PSET-90",
        "PSET-95",
    ]
    # Beside, not instead of, the finding and the probabilities.
    assert len(named(sr, "Finding")) == 1
    assert len([i for i in items(sr) if i.ValueType == "NUM"]) == len(PROBABILITIES)


def test_model_sr_without_prediction_sets_has_no_set_items(source):
    sr = read(model_result_sr(source=source, result=result(), key="p1", when=WHEN))

    assert [
        i for i in items(sr) if "Prediction set" in i.ConceptNameCodeSequence[0].CodeMeaning
    ] == []


def test_uids_are_stable_per_key_and_differ_between_keys_and_kinds(source):
    first = model_result_sr(source=source, result=result(), key="p1", when=WHEN)
    again = model_result_sr(source=source, result=result(), key="p1", when=WHEN)
    other = read(model_result_sr(source=source, result=result(), key="p2", when=WHEN))
    read_1 = read(reading_sr(source=source, reading=reading(), key="p1", when=WHEN))
    read_2 = read(reading_sr(source=source, reading=reading(), key="p2", when=WHEN))
    model = read(first)

    assert first == again  # the same thing sent twice is the same instance, byte for byte
    assert other.SOPInstanceUID != model.SOPInstanceUID
    assert other.SeriesInstanceUID == model.SeriesInstanceUID
    assert read_1.SOPInstanceUID != model.SOPInstanceUID
    assert read_1.SeriesInstanceUID != model.SeriesInstanceUID
    assert read_2.SOPInstanceUID != read_1.SOPInstanceUID
    assert read_2.SeriesInstanceUID == read_1.SeriesInstanceUID
    elsewhere = read(model_result_sr(source=film(), result=result(), key="p1", when=WHEN))
    assert elsewhere.SeriesInstanceUID != model.SeriesInstanceUID
    assert elsewhere.SOPInstanceUID != model.SOPInstanceUID


def test_not_assessable_result_gives_no_finding_and_no_probabilities(source):
    refused = result(
        label="normal",
        assessable=False,
        reasons=["lateral view", "too dark"],
        flags=[],
        prediction_sets=SETS,
    )
    sr = read(model_result_sr(source=source, result=refused, key="p1", when=WHEN))

    assert named(sr, "Finding") == []
    assert [i for i in items(sr) if i.ValueType == "NUM"] == []
    assert named(sr, "Prediction set at 90% coverage") == []
    (evaluation,) = named(sr, "Algorithm assessability")
    assert evaluation.ConceptCodeSequence[0].CodeMeaning == "Not assessable by algorithm"
    assert [i.TextValue for i in named(sr, "Reason not assessable")] == ["lateral view", "too dark"]
    assert [i.TextValue for i in named(sr, "Algorithm Version")] == [MODEL]


def test_reading_sr_carries_the_radiologists_label_and_person_observer(source):
    sr = read(reading_sr(source=source, reading=reading(), key="r1", when=WHEN))

    assert sr.StudyInstanceUID == read(source).StudyInstanceUID
    assert (sr.SeriesNumber, sr.PreliminaryFlag) == (997, "FINAL")
    assert [code_of(i) for i in named(sr, "Finding")] == [SNOMED["viral_pneumonia"]]
    assert code_of(named(sr, "Observer Type")[0]) == "121006"  # Person
    assert [str(i.PersonName) for i in named(sr, "Person Observer Name")] == ["Reader^Ada^^Dr"]
    assert [i.TextValue for i in named(sr, "Comment")] == ["patchy bilateral opacities"]
    assert [code_of(i) for i in named(sr, "Image Quality")] == ["RID12"]
    assert named(sr, "Algorithm Version") == []
    assert named(sr, "Device Observer UID") == []
    assert [i for i in items(sr) if i.ValueType == "NUM"] == []


def test_not_diagnostic_reading_has_no_finding_and_says_so(source):
    says = reading(label="", assessability="not_diagnostic", comment="")
    sr = read(reading_sr(source=source, reading=says, key="r1", when=WHEN))

    assert named(sr, "Finding") == []
    assert [code_of(i) for i in named(sr, "Image Quality")] == ["RID14"]
    assert named(sr, "Comment") == []


def test_unknown_assessability_is_refused(source):
    with pytest.raises(ValueError, match="assessability"):
        reading_sr(source=source, reading=reading(assessability="maybe"), key="r1", when=WHEN)


def test_names_in_any_script_survive_from_a_latin1_source():
    source = film(SpecificCharacterSet="ISO_IR 100", PatientName="Müller^Jürgen")
    says = reading(reader_name="Dr Zoë Łukasiewicz", comment="rechts basal Verschattung, Ø 2 cm")
    sr = read(reading_sr(source=source, reading=says, key="r1", when=WHEN))

    assert str(sr.PatientName) == "Müller^Jürgen"
    assert [str(i.PersonName) for i in named(sr, "Person Observer Name")] == ["Łukasiewicz^Zoë^^Dr"]
    assert named(sr, "Comment")[0].TextValue == says.comment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dr Ada Reader", "Reader^Ada^^Dr"),
        ("Ada Reader", "Reader^Ada"),
        ("Prof. Ada Byron Lovelace", "Lovelace^Ada^Byron^Prof."),
        ("reader1", "reader1^"),
        ("Reader^Ada", "Reader^Ada"),
        ("Ada = Reader \\ x", "x^Ada^Reader"),
        ("  ", "UNKNOWN"),
    ],
)
def test_person_name_is_a_valid_pn(text, expected):
    assert person_name(text) == expected


def _sparse_film() -> bytes:
    ds = dataset(np.zeros((64, 64), np.uint8) + 100, bits=12)
    ds.PatientSex = "U"  # not an enumerated value
    for keyword in ("PatientBirthDate", "ReferringPhysicianName", "AccessionNumber", "StudyDate"):
        delattr(ds, keyword)
    return to_bytes(ds)


CASES = {
    "model-assessable": lambda src: model_result_sr(
        source=src, result=result(), key="k", when=WHEN
    ),
    "model-with-prediction-sets": lambda src: model_result_sr(
        source=src, result=result(prediction_sets=SETS), key="k", when=WHEN
    ),
    "model-not-assessable": lambda src: model_result_sr(
        source=src,
        result=result(assessable=False, reasons=["not a chest film"], flags=[]),
        key="k",
        when=WHEN,
    ),
    "reading": lambda src: reading_sr(source=src, reading=reading(), key="k", when=WHEN),
    "reading-not-diagnostic": lambda src: reading_sr(
        source=src, reading=reading(label="", assessability="not_diagnostic"), key="k", when=WHEN
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", ["corpus", "sparse"])
def test_dciodvfy_finds_no_errors(tmp_path, case, kind):
    source = film() if kind == "corpus" else _sparse_film()
    path = Path(tmp_path) / f"{case}.dcm"
    path.write_bytes(CASES[case](source))

    errors, _ = dciodvfy_report(path)

    assert errors == []


def test_dciodvfy_report_sees_the_errors_of_an_invalid_film(tmp_path):
    path = Path(tmp_path) / "film.dcm"
    path.write_bytes(film())  # the corpus film lacks many DX Type 1 attributes

    errors, warnings = dciodvfy_report(path)

    assert any("ImagerPixelSpacing" in line for line in errors)
    assert warnings


def test_dciodvfy_report_fails_when_dicom3tools_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)

    with pytest.raises(pytest.fail.Exception, match="dicom3tools"):
        dciodvfy_report(Path(tmp_path) / "any.dcm")


def test_sr_module_imports_neither_django_nor_torch():
    tree = ast.parse(Path(sr_module.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}

    assert {name.split(".")[0] for name in imported} & {"django", "torch", "xrayweb"} == set()
