from pathlib import Path

import pytest

SAMPLE_DIR = Path(__file__).parent / "data" / "cxr_sample"
SAMPLE_MANIFEST = SAMPLE_DIR / "manifest.csv"
CLASSES = ["covid19", "bacterial_pneumonia", "viral_pneumonia", "normal"]


def worker_argv(*options: str, module: str = "celery") -> list[str]:
    """A `celery worker` command line for this project's queues, run by this interpreter."""
    import sys

    return [
        sys.executable,
        "-m",
        module,
        "-A",
        "xrayweb",
        "worker",
        "-Q",
        "inference,default",
        "--loglevel",
        "INFO",
        *options,
    ]


def use_filesystem_broker(folder: Path) -> None:
    """Point this process's Celery publisher at a broker folder of the test's own."""
    from xrayweb.brokers import filesystem_broker_options
    from xrayweb.celery import app

    options = filesystem_broker_options(folder)
    # The app reads Django settings with the CELERY_ namespace, so override those keys, then
    # drop the cached publishing pools so the next .delay() uses them.
    app.conf.CELERY_BROKER_URL = "filesystem://"
    app.conf.CELERY_BROKER_TRANSPORT_OPTIONS = options
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture(scope="session", autouse=True)
def test_broker(tmp_path_factory) -> Path:
    """Tasks enqueued by tests never reach the developer's own broker folder or Redis."""
    folder = tmp_path_factory.mktemp("broker")
    use_filesystem_broker(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A MobileNetV2 + VGG11-BN bundle with random weights at 64 px: fast on any CPU."""
    import torch

    from classifier.bundle import save_bundle
    from classifier.metadata import BundleMetadata, MemberSpec
    from classifier.networks import build_member

    torch.manual_seed(0)
    meta = BundleMetadata(
        classes=CLASSES,
        members=[MemberSpec("mobilenet", "mobilenet_v2"), MemberSpec("vgg", "vgg11_bn")],
        input_size=64,
        created_at="2026-01-01T00:00:00+00:00",
        metrics={"note": "random weights for tests"},
    )
    members = {"mobilenet": build_member("mobilenet_v2", 4), "vgg": build_member("vgg11_bn", 4)}
    path = tmp_path_factory.mktemp("bundles") / "tiny.safetensors"
    save_bundle(path, members, meta)
    return path


@pytest.fixture
def sample_images() -> list[Path]:
    return sorted((SAMPLE_DIR / "images").glob("*.jpg"))
