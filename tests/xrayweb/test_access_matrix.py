"""Who may do what, for every URL pattern (pages and API) × {anonymous, staff, radiologist,
admin} × {GET, POST, PUT, DELETE}. A URL added without a row here fails the first test.

Statuses: 302 = sent to the login page (pages) or on (after a form); 401 = the API's "log in";
403 = logged in, wrong role; 404 = allowed, but this study has no such file; 405 = no such
method. The test client skips CSRF checks here; tests/xrayweb/test_security.py enforces them."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

ROLES = ("anonymous", "staff", "radiologist", "admin")

# pattern -> {method: (anonymous, staff, radiologist, admin)}; PUT and DELETE default to
# "log in first" for anonymous users and 405 for everyone else.
MATRIX = {
    "": {"GET": (302, 302, 302, 302), "POST": (302, 405, 405, 405)},
    "healthz": {"GET": (200, 200, 200, 200), "POST": (405, 405, 405, 405)},
    # The test client calls from loopback, the default internal network; who else may read
    # the metrics is tests/xrayweb/test_metrics.py.
    "metrics": {"GET": (200, 200, 200, 200), "POST": (405, 405, 405, 405)},
    "accounts/login/": {"GET": (200, 200, 200, 200), "POST": (200, 200, 200, 200)},
    "accounts/logout/": {"GET": (302, 405, 405, 405), "POST": (302, 302, 302, 302)},
    "upload/": {
        "GET": (302, 200, 403, 200),
        "POST": (302, 400, 403, 400),
        "PUT": (302, 405, 405, 405),  # pages check the method before the role
        "DELETE": (302, 405, 405, 405),
    },
    "worklist/": {"GET": (302, 200, 200, 200), "POST": (302, 405, 405, 405)},
    "worklist/next/": {"GET": (302, 403, 302, 403), "POST": (302, 405, 405, 405)},
    "agreement/": {"GET": (302, 403, 200, 200), "POST": (302, 405, 405, 405)},
    "agreement/export.csv": {"GET": (302, 403, 200, 200), "POST": (302, 405, 405, 405)},
    # The dashboard's earlier address: a permanent redirect for everyone logged in.
    "audit/": {"GET": (302, 301, 301, 301), "POST": (302, 405, 405, 405)},
    "audit/export.csv": {"GET": (302, 301, 301, 301), "POST": (302, 405, 405, 405)},
    "audit/log/": {"GET": (302, 403, 403, 200), "POST": (302, 405, 405, 405)},
    "studies/<int:pk>/": {"GET": (302, 200, 200, 200), "POST": (302, 405, 405, 405)},
    "studies/<int:pk>/review/": {
        "GET": (302, 405, 405, 405),
        "POST": (302, 403, 302, 403),
        "PUT": (302, 405, 405, 405),
        "DELETE": (302, 405, 405, 405),
    },
    "media/<path:path>": {"GET": (401, 200, 200, 200), "POST": (401, 405, 405, 405)},
    "api/auth/token/": {
        "GET": (401, 405, 405, 405),
        "POST": (400, 400, 400, 400),  # no credentials in the body
        "DELETE": (401, 204, 204, 204),
    },
    "api/studies/": {
        "GET": (401, 200, 200, 200),
        "POST": (401, 400, 403, 400),  # staff and admins upload; an empty upload is a 400
        "PUT": (401, 405, 405, 405),
        "DELETE": (401, 405, 405, 405),
    },
    "api/studies/<int:pk>/": {"GET": (401, 200, 200, 200), "POST": (401, 405, 405, 405)},
    "api/studies/<int:pk>/predictions/": {
        "GET": (401, 200, 200, 200),
        "POST": (401, 405, 405, 405),
    },
    "api/studies/<int:pk>/reviews/": {
        "GET": (401, 200, 200, 200),
        "POST": (401, 403, 400, 403),  # radiologists only; an empty reading is a 400
    },
    "api/audit/events/": {"GET": (401, 403, 403, 200), "POST": (401, 403, 403, 405)},
    "api/studies/<int:pk>/export.dcm": {
        "GET": (401, 403, 200, 200),
        "POST": (401, 403, 405, 405),
    },
    # A radiologist's "no text is burned into this film" (before a de-identified export).
    "api/studies/<int:pk>/burned-in-check/": {
        "GET": (401, 403, 405, 403),
        "POST": (401, 403, 200, 403),
    },
    "api/studies/<int:pk>/overlay.dcm": {
        "GET": (401, 403, 200, 200),
        "POST": (401, 403, 405, 405),
    },
    "api/model-versions/": {"GET": (401, 403, 403, 200), "POST": (401, 403, 403, 405)},
    "api/model-versions/<int:pk>/activate/": {
        "GET": (401, 403, 403, 405),
        "POST": (401, 403, 403, 200),
    },
    "api/audit/export.csv": {"GET": (401, 403, 200, 200), "POST": (401, 403, 405, 405)},
    "api/schema/": {"GET": (401, 200, 200, 200), "POST": (401, 405, 405, 405)},
    "api/docs/": {"GET": (401, 200, 200, 200), "POST": (401, 405, 405, 405)},
    # STOW-RS: staff and admins store; an empty POST has no multipart/related body (415).
    # The review page's shortcut setting: a form POST that redirects back.
    "accounts/shortcuts/": {"GET": (302, 405, 405, 405), "POST": (302, 302, 302, 302)},
    "dicomweb/studies": {
        "GET": (401, 405, 405, 405),
        "POST": (401, 415, 403, 415),
        "PUT": (401, 405, 405, 405),
        "DELETE": (401, 405, 405, 405),
    },
    # Django's admin site (everything under it): admins only.
    "admin/": {"GET": (302, 302, 302, 200), "POST": (302, 302, 302, 200)},
}


def url_patterns() -> list[str]:
    """Every URL pattern of the project; the admin site counts as one."""
    found = []

    def walk(patterns, prefix):
        for p in patterns:
            if isinstance(p, URLResolver) and str(p.pattern) == "admin/":
                found.append("admin/")
            elif isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                found.append(prefix + str(p.pattern))

    walk(get_resolver().url_patterns, "")
    return found


def test_every_url_pattern_has_a_row_in_the_access_matrix():
    patterns = url_patterns()
    assert sorted(set(patterns)) == sorted(MATRIX), (
        "add the new URL to MATRIX with the status each role gets"
    )


def _expected(pattern: str, method: str) -> tuple[int, ...]:
    """Explicit rows first. Otherwise (PUT, DELETE): anonymous users are asked to log in; a
    role refused POST is refused these too (the role is checked before the method); everyone
    else gets 405. The admin site answers as for GET; the login form treats PUT as POST."""
    rows = MATRIX[pattern]
    if method in rows:
        return rows[method]
    if pattern == "admin/":
        return rows["GET"]
    if pattern == "accounts/login/":
        return (200,) * 4 if method == "PUT" else (405,) * 4
    anonymous = 401 if pattern.startswith(("api/", "media/", "dicomweb/")) else 302
    if pattern in ("healthz", "metrics"):
        anonymous = 405
    return (anonymous, *(403 if code == 403 else 405 for code in rows["POST"][1:]))


METHODS = ("GET", "POST", "PUT", "DELETE")


@pytest.fixture
def tiny_dicom_study(active_version, staff, sample_images):
    from tests.xrayweb.dicom_corpus import dataset, source_image, to_bytes
    from xrayweb.inference import runtime
    from xrayweb.studies.services.ingest import study_create

    image = source_image(sample_images[0], width=96)
    data = to_bytes(dataset(image, bits=12, BurnedInAnnotation="NO"))
    study = study_create(user=staff, patient_id="", accession="", data=data, filename="a.dcm")
    runtime.prediction_batch_run(study_id=study.pk, max_studies=1)
    study.refresh_from_db()
    assert study.status == "done" and study.current_prediction.heatmaps
    return study


@pytest.mark.parametrize("pattern", list(MATRIX))
def test_access_matrix(
    client, make_user, staff, tiny_dicom_study, active_version, worker_answering, pattern
):
    """Every method and role for this URL pattern, on a predicted DICOM study (so that every
    file route has something to serve); all mismatches are reported together. The staff
    user is the study's uploader: other staff do not see it (tests/xrayweb/test_sites.py)."""
    users = {
        "anonymous": None,
        "staff": staff,
        "radiologist": make_user("radiologist"),
        "admin": make_user("admin"),
    }
    study = tiny_dicom_study
    path = "/" + pattern.replace("<path:path>", study.image.name)
    if pattern == "api/model-versions/<int:pk>/activate/":
        path = path.replace("<int:pk>", str(active_version.pk))
    path = path.replace("<int:pk>", str(study.pk))
    mismatches = []
    for method in METHODS:
        for role, expected in zip(ROLES, _expected(pattern, method), strict=True):
            client.logout()
            if users[role] is not None:
                client.force_login(users[role])
            response = getattr(client, method.lower())(path)
            if response.status_code != expected:
                mismatches.append(f"{method} {path} as {role}: {response.status_code}")
            elif (
                expected == 302
                and role == "anonymous"
                and pattern != "accounts/logout/"
                and "/login/" not in response["Location"]
            ):
                mismatches.append(f"{method} {path} as {role}: not sent to the login")
    assert not mismatches, "\n".join(mismatches)


def test_only_radiologists_and_admins_reveal_and_only_radiologists_overrule(
    client, api_client, make_user, predicted
):
    """The gate's refusal, per role: who sees the model's output on a not-assessable study
    (?reveal=1), and who may overrule it (a reading with an assessability answer)."""
    study = predicted({"covid19": 0.9}, gate={"assessable": False, "reasons": ["blank"]})
    reveals, overrules = {}, {}
    for role in ROLES[1:]:
        user = make_user(role)
        client.force_login(user)
        page = client.get(f"/studies/{study.pk}/?reveal=1").content.decode()
        reveals[role] = 'class="prediction"' in page
        api_client.force_authenticate(user)
        answer = {"assessability": "not_diagnostic"}
        overrules[role] = (
            client.post(f"/studies/{study.pk}/review/", answer).status_code,
            api_client.post(f"/api/studies/{study.pk}/reviews/", answer).status_code,
        )
    assert reveals == {"staff": False, "radiologist": True, "admin": True}
    assert overrules == {"staff": (403, 403), "radiologist": (302, 201), "admin": (403, 403)}
