import io

import numpy as np
import pytest
from PIL import Image

from tests.factories import UserFactory
from xrayweb.accounts.services import user_create_with_role
from xrayweb.inference.services.registry import model_version_register


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_DIR = tmp_path / "models"


@pytest.fixture
def make_user(db):
    def make(role: str | None, username: str | None = None):
        name = username or f"{role or 'norole'}-{UserFactory._meta.model.objects.count()}"
        if role is None:
            return UserFactory(username=name)
        return user_create_with_role(username=name, password="pw-Test-12345", role=role)

    return make


@pytest.fixture
def staff(make_user):
    return make_user("staff")


@pytest.fixture
def radiologist(make_user):
    return make_user("radiologist")


@pytest.fixture
def admin_user(make_user):
    return make_user("admin")


@pytest.fixture
def active_version(db, tiny_bundle):
    return model_version_register(bundle_path=tiny_bundle, name="tiny", activate=True)


def png_bytes(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def png():
    return png_bytes


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def predicted(active_version, staff, png):
    """make(probabilities, members=None, lung_mask="", cam_lung_fraction=None, gate=None,
    prediction_sets=None, **study fields) -> a done study with that prediction, recorded
    through the real services (upload, then the worker's predictions_record). ``gate``: the
    gate's verdict as Assessment.to_dict() gives it (default: assessable, no reasons);
    ``prediction_sets``: the classifier's conformal sets (default: none, an uncalibrated
    bundle)."""
    from xrayweb.inference.services.predictions import PredictionResult, predictions_record
    from xrayweb.studies.services.ingest import study_create

    counter = iter(range(10_000))

    def make(
        probabilities: dict,
        members: dict | None = None,
        lung_mask: str = "",
        cam_lung_fraction: float | None = None,
        gate: dict | None = None,
        prediction_sets: dict | None = None,
        **fields,
    ):
        i = next(counter)
        study = study_create(
            user=staff,
            patient_id=fields.pop("patient_id", f"PAT-{i}"),
            accession=fields.pop("accession", f"ACC-{i}"),
            data=png(seed=i),
            site=fields.pop("site", ""),
            view=fields.pop("view", ""),
        )
        full = dict.fromkeys(active_version.classes, 0.0) | probabilities
        label = max(full, key=full.get)
        members = members or {"mobilenet": full, "vgg": full}
        predictions_record(
            version=active_version,
            results=[
                PredictionResult(
                    study,
                    label,
                    full,
                    members,
                    {},
                    lung_mask,
                    cam_lung_fraction,
                    gate or {"assessable": True, "reasons": [], "scores": {}},
                    prediction_sets=prediction_sets or {},
                )
            ],
            cam_layers={},
            duration_ms=5,
        )
        study.refresh_from_db()
        return study

    return make


@pytest.fixture
def worker_answering(db):
    """A worker heartbeat written just now, as a running worker writes it (tests of /healthz
    that expect every part up, with no worker process)."""
    from django.utils import timezone

    from xrayweb.ops.heartbeat import heartbeat_write

    heartbeat_write(hostname="celery@test", queues="default,inference", started_at=timezone.now())
