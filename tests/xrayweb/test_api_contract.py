"""The API contract: an OpenAPI 3 schema at /api/schema/ that lists every API URL, and
schemathesis fuzzing the live app against it (no 5xx; every response matches the schema)."""

import pytest
import requests
import schemathesis
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from knox.models import AuthToken
from schemathesis import checks

from tests.factories import api_token_with_key

KEYS = {"admin": "a" * 40, "staff": "s" * 40, "radiologist": "r" * 40}


@schemathesis.serializer("multipart/related")
def _stow_body(ctx, value) -> bytes:
    """STOW-RS bodies: the fuzzer's bytes as they are (with no boundary in the media type
    either); the server must refuse them with a documented 4xx, never a 5xx."""
    return value if isinstance(value, bytes) else str(value).encode()


def _api_routes() -> set[str]:
    """Every URL pattern under api/, as an OpenAPI path ("<int:pk>" -> "{id}")."""
    routes = set()

    def walk(patterns, prefix):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                routes.add("/" + prefix + str(p.pattern))

    walk(get_resolver().url_patterns, "")
    return {
        r.replace("<int:pk>", "{id}").replace("<path:path>", "{path}")
        for r in routes
        if r.startswith("/api/") and r not in ("/api/schema/", "/api/docs/")
    }


@pytest.fixture
def schema_json(api_client, staff):
    api_client.force_authenticate(staff)
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_openapi_3_and_lists_every_api_url(schema_json):
    assert schema_json["openapi"].startswith("3.")
    assert _api_routes() <= set(schema_json["paths"]), "an API URL is missing from the schema"
    for path, operations in schema_json["paths"].items():
        for method, operation in operations.items():
            for code in ("401", "403", "404"):  # errors are part of the contract
                assert code in operation["responses"], f"{method} {path} lacks {code}"


def test_the_schema_gives_a_study_prediction_its_nullable_lung_fields(schema_json):
    schemas = schema_json["components"]["schemas"]
    assert schemas["Study"]["properties"]["prediction"]["allOf"] == [
        {"$ref": "#/components/schemas/Prediction"}
    ]
    assert schemas["Study"]["properties"]["prediction"]["nullable"] is True
    prediction = schemas["Prediction"]
    mask, fraction = (prediction["properties"][k] for k in ("lung_mask", "cam_lung_fraction"))
    assert (mask["type"], mask["format"], mask["nullable"]) == ("string", "uri", True)
    assert (fraction["type"], fraction["nullable"]) == ("number", True)
    assert (fraction["minimum"], fraction["maximum"]) == (0.0, 1.0)
    assert {"lung_mask", "cam_lung_fraction"} <= set(prediction["required"])  # always present
    # The study's predictions list shares the component.
    listing = schema_json["paths"]["/api/studies/{id}/predictions/"]["get"]["responses"]["200"]
    items = listing["content"]["application/json"]["schema"]["items"]
    assert items == {"$ref": "#/components/schemas/Prediction"}


def test_the_schema_and_its_docs_are_for_logged_in_users_only(client, api_client, staff):
    assert api_client.get("/api/schema/").status_code == 401
    assert client.get("/api/docs/").status_code == 401
    client.force_login(staff)
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
    # The UI's code and styles come from this server, not a CDN.
    assert b"https://cdn" not in docs.content and b"unpkg.com" not in docs.content


def test_list_pagination_has_a_maximum_page_size(api_client, staff, predicted, monkeypatch):
    from xrayweb.api.pagination import ApiPagination

    assert ApiPagination.max_page_size == 100
    for i in range(3):
        predicted({"normal": 0.9}, patient_id=f"PG-{i}")
    api_client.force_authenticate(staff)
    body = api_client.get("/api/studies/?per_page=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    # Asking for more than the cap gets the cap, never the whole table.
    monkeypatch.setattr(ApiPagination, "max_page_size", 2)
    body = api_client.get("/api/studies/?per_page=100000").json()
    assert body["count"] == 3 and len(body["results"]) == 2


@pytest.fixture
def live_api(live_server, staff, radiologist, admin_user, predicted):
    """The live app (a real HTTP server on the test database) with a few predicted studies
    and a token per role."""
    for i in range(3):
        predicted({"covid19": 0.7, "normal": 0.3}, patient_id=f"LIVE-{i}")
    # One with the lung fields filled in, so both their null and their non-null forms are checked.
    predicted({"normal": 0.9}, lung_mask="masks/live.png", cam_lung_fraction=0.42)
    # And one with conformal sets, so prediction_set and set_certainty are checked non-null too.
    sets = {"0.90": ["covid19", "viral_pneumonia"], "0.95": ["covid19", "viral_pneumonia"]}
    predicted({"covid19": 0.6, "viral_pneumonia": 0.4}, prediction_sets=sets)
    users = {"admin": admin_user, "staff": staff, "radiologist": radiologist}

    def tokens():  # DELETE /api/auth/token/ revokes a token: put it back for the next case
        prefixes = [key[:15] for key in KEYS.values()]
        for role, key in KEYS.items():
            if not AuthToken.objects.filter(token_key=key[:15]).exists():
                api_token_with_key(users[role], key)
        AuthToken.objects.exclude(token_key__in=prefixes).delete()

    tokens()
    raw = requests.get(
        f"{live_server.url}/api/schema/?format=json",
        headers={"Authorization": f"Token {KEYS['admin']}"},
        timeout=30,
    )
    raw.raise_for_status()
    return live_server.url, tokens, schemathesis.openapi.from_dict(raw.json())


# No 5xx; the status code, content type, headers and body of every response are documented;
# and an operation that needs a login answers 401 without one. ("Schema-valid data is
# accepted" is left out: well-formed credentials can be wrong, well-formed bytes not an image.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.ignored_auth,
]
FUZZ = hypothesis_settings(
    max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


@pytest.mark.parametrize("role", ["admin", "staff"])  # admins reach every operation; staff, 403s
def test_the_live_api_never_fails_and_always_matches_its_schema(live_api, role):
    base_url, tokens, schema = live_api
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:

        @given(case=operation.as_strategy())
        @FUZZ
        def fuzz(case):
            tokens()
            case.call_and_validate(
                base_url=base_url,
                headers={"Authorization": f"Token {KEYS[role]}"},
                timeout=30,
                checks=CHECKS,
            )

        fuzz()
