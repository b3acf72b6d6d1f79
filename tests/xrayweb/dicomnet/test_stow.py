"""STOW-RS at /dicomweb/studies, sent by dicomweb-client over real HTTP (a live server)."""

import io

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from knox.models import AuthToken
from pydicom import dcmread

from tests.xrayweb.dicomnet import films
from xrayweb.audit.models import AuditEvent
from xrayweb.studies.models import Study

pytestmark = pytest.mark.django_db(transaction=True)
# dicomweb-client sends a body larger than its chunk size (1 MB by default) chunked.
WHOLE = 2**31


@pytest.fixture(autouse=True)
def enqueued(mocker):
    return mocker.patch("xrayweb.inference.tasks.study_enqueue")


@pytest.fixture
def token(staff) -> str:
    return AuthToken.objects.create(user=staff)[1]


def client_for(live_server, key: str, chunk_size: int = WHOLE) -> DICOMwebClient:
    return DICOMwebClient(
        url=f"{live_server.url}/dicomweb",
        headers={"Authorization": f"Token {key}"},
        chunk_size=chunk_size,
    )


def body(*parts: bytes, boundary: str = "xrayweb-test") -> tuple[bytes, dict]:
    data = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n"
        for p in parts
    )
    data += f"--{boundary}--\r\n".encode()
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return data, {"Content-Type": content_type}


def post(live_server, key: str, data: bytes, headers: dict) -> requests.Response:
    return requests.post(
        f"{live_server.url}/dicomweb/studies",
        data=data,
        headers={"Authorization": f"Token {key}", "Accept": "application/dicom+json"} | headers,
        timeout=60,
    )


def test_dicomweb_client_stores_films_with_a_token(live_server, token, staff, enqueued):
    sent = [films.film(index=i) for i in range(2)]
    response = client_for(live_server, token).store_instances(sent)
    referenced = response.ReferencedSOPSequence
    assert [item.ReferencedSOPInstanceUID for item in referenced] == [
        ds.SOPInstanceUID for ds in sent
    ]
    assert "FailedSOPSequence" not in response
    studies = Study.objects.order_by("pk")
    assert [s.sop_instance_uid for s in studies] == [ds.SOPInstanceUID for ds in sent]
    assert all(s.uploaded_by == staff for s in studies)
    assert referenced[0].RetrieveURL.endswith(f"/studies/{studies[0].pk}/")
    assert enqueued.call_count == 2
    uploads = AuditEvent.objects.filter(action=AuditEvent.Action.STUDY_UPLOAD)
    assert [e.detail for e in uploads] == [{"via": "stow-rs"}] * 2


def test_a_chunked_body_gets_411_and_stores_nothing(live_server, token):
    ds = films.film()
    with pytest.raises(requests.HTTPError) as raised:
        client_for(live_server, token, chunk_size=1024).store_instances([ds])
    assert raised.value.response.status_code == 411
    assert "Content-Length" in raised.value.response.json()["detail"]
    assert not Study.objects.exists()


def test_some_stored_gives_202_and_lists_the_failed_one(live_server, token):
    good = films.to_bytes(films.film())
    bad = films.broken("rows-mismatch.dcm")
    response = post(live_server, token, *body(good, bad))
    assert response.status_code == 202
    assert response.headers["Content-Type"].startswith("application/dicom+json")
    answer = response.json()
    (stored,) = answer["00081199"]["Value"]
    (failed,) = answer["00081198"]["Value"]
    assert stored["00081155"]["Value"] == [dcmread(io.BytesIO(good)).SOPInstanceUID]
    assert failed["00081197"]["Value"] == [0xC000]
    assert Study.objects.count() == 1
    refused = AuditEvent.objects.get(action=AuditEvent.Action.DICOM_INSTANCE)
    assert refused.detail["via"] == "stow-rs" and "do not match" in refused.detail["reason"]


def test_none_stored_gives_409(live_server, token):
    response = post(live_server, token, *body(films.broken("no-pixels.dcm"), b"not dicom"))
    assert response.status_code == 409
    assert len(response.json()["00081198"]["Value"]) == 2
    assert not Study.objects.exists()


def test_a_duplicate_is_referenced_with_a_warning_and_stays_one_study(live_server, token):
    data = films.to_bytes(films.film())
    assert post(live_server, token, *body(data)).status_code == 200
    again = post(live_server, token, *body(data))
    assert again.status_code == 200
    (item,) = again.json()["00081199"]["Value"]
    assert item["00081196"]["Value"] == [0xB000]
    assert Study.objects.count() == 1


def test_another_image_under_a_stored_uid_fails_with_duplicate_sop_and_is_audited(
    live_server, token
):
    first = films.film(index=0)
    assert post(live_server, token, *body(films.to_bytes(first))).status_code == 200
    other = films.film(index=1, SOPInstanceUID=first.SOPInstanceUID)
    response = post(live_server, token, *body(films.to_bytes(other)))
    assert response.status_code == 409
    (item,) = response.json()["00081198"]["Value"]
    assert item["00081197"]["Value"] == [0x0111]
    assert item["00081155"]["Value"] == [first.SOPInstanceUID]
    assert Study.objects.count() == 1
    conflict = AuditEvent.objects.get(action=AuditEvent.Action.DICOM_INSTANCE)
    assert conflict.detail["outcome"] == "conflict"


def test_a_request_past_the_part_limit_is_refused_whole(live_server, token, settings):
    """Issue 27: STOW-RS had no limit on the number of parts (each refused part writes an
    audit row)."""
    settings.DICOMWEB_MAX_PARTS = 2
    films_ = [films.to_bytes(films.film(index=i)) for i in range(3)]
    response = post(live_server, token, *body(*films_))
    assert response.status_code == 413 and "At most 2 instances" in response.json()["detail"]
    assert not Study.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_INSTANCE).exists()
    assert post(live_server, token, *body(*films_[:2])).status_code == 200


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/dicom", 415),
        ('multipart/related; type="application/dicom+json"; boundary=x', 415),
        ('multipart/related; type="application/dicom"', 400),  # no boundary
    ],
)
def test_a_body_that_is_not_a_dicom_multipart_is_refused(live_server, token, content_type, status):
    data, _ = body(films.to_bytes(films.film()))
    response = post(live_server, token, data, {"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert not Study.objects.exists()


def test_a_body_without_its_close_delimiter_is_refused(live_server, token):
    data, headers = body(films.to_bytes(films.film()))
    response = post(live_server, token, data[: -len("--xrayweb-test--\r\n")], headers)
    assert response.status_code == 400
    assert "close delimiter" in response.json()["detail"]


def test_a_body_over_the_limit_gets_413(live_server, token, settings):
    settings.DICOMWEB_MAX_BYTES = 1000
    response = post(live_server, token, *body(films.to_bytes(films.film())))
    assert response.status_code == 413
    assert not Study.objects.exists()


def test_radiologists_and_anonymous_users_may_not_store(live_server, make_user):
    data, headers = body(films.to_bytes(films.film()))
    radiologist = AuthToken.objects.create(user=make_user("radiologist"))[1]
    assert post(live_server, radiologist, data, headers).status_code == 403
    anonymous = requests.post(f"{live_server.url}/dicomweb/studies", data=data, headers=headers)
    assert anonymous.status_code == 401
    assert not Study.objects.exists()


def test_stow_is_in_the_openapi_schema(client, staff):
    client.force_login(staff)
    schema = client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/dicomweb/studies"]["post"]
    assert "multipart/related" in operation["requestBody"]["content"]
    assert {"200", "202", "409", "411"} <= set(operation["responses"])


def test_an_empty_body_is_refused(live_server, token):
    _, headers = body(b"")
    response = post(live_server, token, b"", headers)
    assert response.status_code == 400
    assert "no DICOM instances" in response.json()["detail"]


def test_a_part_that_is_not_dicom_is_refused_and_audited(live_server, token):
    boundary = "b0"
    data = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}--\r\n"
    ).encode()
    headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}
    response = post(live_server, token, data, headers)
    assert response.status_code == 409
    refused = AuditEvent.objects.get(action=AuditEvent.Action.DICOM_INSTANCE)
    assert refused.detail["outcome"] == "refused" and "application/json" in refused.detail["reason"]


def test_errors_are_plain_json_whatever_the_client_accepts(live_server, token):
    response = post(live_server, token, b"x", {"Content-Type": "application/dicom"})
    assert response.status_code == 415
    assert response.headers["Content-Type"] == "application/json"


def test_two_stores_of_one_film_at_once_answer_with_the_stored_study(staff, mocker):
    """The loser of a race meets the unique constraint (a 409 with no study id): it is told
    which study holds the film, as a plain duplicate is."""
    from xrayweb.dicomnet.receiving import instance_store
    from xrayweb.errors import ApplicationError

    data = films.to_bytes(films.film())
    first = instance_store(data=data, user=staff, via="stow-rs")
    mocker.patch(
        "xrayweb.dicomnet.receiving.study_create",
        side_effect=ApplicationError("already uploaded", status=409),
    )
    second = instance_store(data=data, user=staff, via="stow-rs")
    assert second.outcome == "duplicate" and second.study_id == first.study_id


# Sizes (issue 27): before, the whole body was read into memory at once (up to
# DICOMWEB_MAX_BYTES, 200 MB), then split, then each part copied again.


class _Reads(io.BytesIO):
    """A request body that records the size of every read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int] = []

    def read(self, size=-1):
        chunk = super().read(size)
        self.sizes.append(len(chunk))
        return chunk


def test_the_body_is_read_in_chunks_and_a_large_part_spooled_to_disk():
    from xrayweb.api.parsers import MultipartRelatedParser
    from xrayweb.dicomnet.stow import CHUNK_BYTES, SPOOL_BYTES

    big, small = films.to_bytes(films.film(width=1400)), films.to_bytes(films.film(width=64))
    assert len(big) > 3 * SPOOL_BYTES
    data, headers = body(big, small)
    stream = _Reads(data)
    parts = MultipartRelatedParser().parse(stream, headers["Content-Type"])
    assert max(stream.sizes) <= CHUNK_BYTES  # before: one read of the whole body
    assert [p.read() for p in parts] == [big, small]
    assert parts[0].file._rolled and not parts[1].file._rolled  # on disk, in memory


def test_a_part_past_the_size_limit_is_dropped_as_it_streams_and_refused_alone(
    live_server, token, settings
):
    """A 3.9 MB film over a 1 MB limit, beside one within it: the big one is refused (A700,
    "larger than 1 MB") without its bytes being kept, and the small one is stored."""
    settings.MAX_UPLOAD_BYTES = 1024 * 1024
    big, small = films.film(width=1400), films.film(width=64)
    response = post(live_server, token, *body(films.to_bytes(big), films.to_bytes(small)))
    assert response.status_code == 202, response.text
    failed = response.json()["00081198"]["Value"]
    assert [f["00081197"]["Value"] for f in failed] == [[0xA700]]
    assert [s.sop_instance_uid for s in Study.objects.all()] == [small.SOPInstanceUID]
    refused = AuditEvent.objects.get(action=AuditEvent.Action.DICOM_INSTANCE)
    assert "larger than 1 MB" in refused.detail["reason"]
